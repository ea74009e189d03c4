"""One call from a prompt to a pruned, annotated attribution graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from interp.circuits.attribution import (
    AttributionConfig,
    LogitTarget,
    TargetError,
    attribute,
    head_paths,
    token_target,
)
from interp.circuits.features import describe_features
from interp.circuits.graph import Graph, prune
from interp.circuits.replacement import ReplacementModel
from interp.transcoders.loading import for_model
from interp.errors import ConfigError


@dataclass
class TraceConfig:
    """How a prompt is traced into a graph."""

    node_threshold: float = 0.8
    """Keep nodes until their cumulative influence on the logits reaches this fraction."""
    edge_threshold: float = 0.98
    """Keep edges until their cumulative influence reaches this fraction."""
    batch_size: int = 64
    """Targets per backward pass."""
    heads: bool = True
    """Split the kept edges over the attention heads that carry them."""
    min_head_fraction: float = 0.05
    """Smallest fraction of an edge a head path must carry to be kept."""
    same_position_heads: bool = False
    """Also keep head paths that stay at one position (a head attending to itself)."""
    n_top_logits: int = 1
    """Logit targets when none is given: the most probable next tokens."""
    progress: bool = True
    """Show a progress bar over the attribution's backward passes."""

    def __post_init__(self) -> None:
        for name in ("node_threshold", "edge_threshold", "min_head_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.n_top_logits < 1:
            raise ConfigError(f"n_top_logits must be >= 1, got {self.n_top_logits}")


def prompt_tokens(model, prompt: str | Tensor | Sequence[int]) -> Tensor:
    """Token ids of a prompt (a string gets the model's BOS token prepended)."""
    if isinstance(prompt, str):
        if getattr(model, "tokenizer", None) is None:
            raise TargetError("this model has no tokenizer: pass the prompt as token ids")
        return model.to_tokens(prompt)[0].cpu()
    return torch.as_tensor(prompt).reshape(-1)


def trace(
    model,
    transcoders: dict[int, object],
    prompt: str | Tensor | Sequence[int],
    target: str | int | LogitTarget | Sequence[LogitTarget] | None = None,
    cfg: TraceConfig | None = None,
    context_tokens: Tensor | None = None,
    model_name: str = "",
) -> Graph:
    """Attribute, prune, split edges over heads and describe features.

    ``target``: a token (string or id), a :class:`LogitTarget` (e.g. a logit difference),
    a list of them, or None for the ``n_top_logits`` most probable next tokens.
    ``context_tokens`` ([batch, pos]) supply each feature's top activating contexts.
    ``model_name`` is recorded in the graph and its exports (default: ``model.cfg.model_name``).
    """
    cfg = cfg or TraceConfig()
    transcoders = for_model(model, transcoders)
    tokens = prompt_tokens(model, prompt)
    if target is None:
        with torch.no_grad():
            last = model(tokens[None].to(model.cfg.device))[0, -1]
        targets = [token_target(model, int(t)) for t in torch.topk(last, cfg.n_top_logits).indices]
    elif isinstance(target, LogitTarget):
        targets = [target]
    elif isinstance(target, (str, int)):
        targets = [token_target(model, target)]
    else:
        targets = list(target)
    acfg = AttributionConfig(batch_size=cfg.batch_size, heads=cfg.heads, min_head_fraction=cfg.min_head_fraction,
                             progress=cfg.progress)
    full = attribute(model, transcoders, tokens, targets, acfg, prompt=prompt if isinstance(prompt, str) else None)
    graph = prune(full, cfg.node_threshold, cfg.edge_threshold)
    graph.model_name = model_name or str(getattr(model.cfg, "model_name", "") or "")
    if cfg.heads:
        rm = ReplacementModel(model, transcoders)
        graph.head_paths = head_paths(
            rm, rm.clean_state(tokens), graph, cfg.batch_size, cfg.min_head_fraction, cfg.same_position_heads
        )
    graph.feature_info = describe_features(model, transcoders, graph, context_tokens)
    return graph
