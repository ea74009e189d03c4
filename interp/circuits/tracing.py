"""From a prompt to a pruned, annotated attribution graph: :func:`trace` for a model and
transcoders in hand, :func:`run` for a config that names them (what ``interp circuit trace``
calls).

The settings nest rather than repeat: :class:`CircuitTraceConfig` (what to load, the prompt,
the target) holds a :class:`TraceConfig` (pruning, head paths, default targets), which holds
the :class:`~interp.circuits.attribution.AttributionConfig` that :func:`attribute` reads.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field, replace

import torch
from jaxtyping import Int
from simple_parsing import field as sp_field
from torch import Tensor

from interp.circuits.attribution import (
    AttributionConfig,
    LogitTarget,
    attribute,
    head_paths,
    token_target,
)
from interp.circuits.features import describe_features
from interp.circuits.graph import Graph, prune
from interp.circuits.replacement import ReplacementModel
from interp.config import check_fraction
from interp.errors import ConfigError, TargetError
from interp.transcoders.loading import for_model, load_run


@dataclass
class TraceConfig:
    """How a prompt is traced into a graph: attribution, pruning, head paths."""

    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    """How the edge matrix is computed (targets per backward pass, progress bar)."""
    node_threshold: float = 0.8
    """Keep nodes until their cumulative influence on the logits reaches this fraction."""
    edge_threshold: float = 0.98
    """Keep edges until their cumulative influence reaches this fraction."""
    heads: bool = True
    """Split the kept edges over the attention heads that carry them."""
    min_head_fraction: float = 0.05
    """Smallest fraction of an edge a head path must carry to be kept."""
    same_position_heads: bool = False
    """Also keep head paths that stay at one position (a head attending to itself)."""
    n_top_logits: int = 1
    """Logit targets when none is given: the most probable next tokens."""
    # deprecated keywords of the flat TraceConfig: TraceConfig(batch_size=8) sets
    # attribution.batch_size and warns; no flags (the CLI's --batch-size and --progress are
    # the nested AttributionConfig's)
    batch_size: InitVar[int | None] = sp_field(default=None, cmd=False)  # noqa: RUF009 - a default of None, no flag
    progress: InitVar[bool | None] = sp_field(default=None, cmd=False)  # noqa: RUF009 - a default of None, no flag

    def __post_init__(self, batch_size: int | None, progress: bool | None) -> None:
        shortcuts = {k: v for k, v in (("batch_size", batch_size), ("progress", progress)) if v is not None}
        if shortcuts:
            given = ", ".join(f"{k}={v!r}" for k, v in shortcuts.items())
            warnings.warn(
                f"TraceConfig({given}) is deprecated: pass TraceConfig(attribution=AttributionConfig({given}))",
                DeprecationWarning,
                stacklevel=3,
            )
            self.attribution = replace(self.attribution, **shortcuts)
        for name in ("node_threshold", "edge_threshold", "min_head_fraction"):
            check_fraction(f"--{name}", getattr(self, name))
        if self.n_top_logits < 1:
            raise ConfigError(f"--n-top-logits must be at least 1, got {self.n_top_logits}")


def prompt_tokens(model, prompt: str | Tensor | Sequence[int]) -> Int[Tensor, " pos"]:
    """Token ids of a prompt (a string gets the model's BOS token prepended); an empty prompt
    is refused, also as a string, which would otherwise be traced as the BOS token alone."""
    if isinstance(prompt, str):
        if not prompt:
            raise TargetError("the prompt is empty: give the text to trace")
        if getattr(model, "tokenizer", None) is None:
            raise TargetError("this model has no tokenizer: pass the prompt as token ids")
        return model.to_tokens(prompt)[0].cpu()
    tokens = torch.as_tensor(prompt).reshape(-1)
    if tokens.numel() == 0:
        raise TargetError("the prompt is empty: give at least one token id to trace")
    return tokens


def trace(
    model,
    transcoders: dict[int, object],
    prompt: str | Tensor | Sequence[int],
    target: str | int | LogitTarget | Sequence[LogitTarget] | None = None,
    cfg: TraceConfig | None = None,
    context_tokens: Int[Tensor, "batch pos"] | None = None,
    model_name: str = "",
) -> Graph:
    """Attribute, prune, split edges over heads and describe features.

    ``target``: a token (string or id), a :class:`LogitTarget` (e.g. a logit difference),
    a list of them, or None for the ``n_top_logits`` most probable next tokens.
    ``context_tokens`` ([batch, pos]) supply each feature's top activating contexts.
    ``model_name`` is recorded in the graph and its exports (default: ``model.cfg.model_name``).
    """
    cfg = cfg or TraceConfig()
    tokens = prompt_tokens(model, prompt)
    transcoders = for_model(model, transcoders)
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
    full = attribute(model, transcoders, tokens, targets, cfg.attribution, prompt=prompt if isinstance(prompt, str) else None)
    graph = prune(full, cfg.node_threshold, cfg.edge_threshold)
    graph.model_name = model_name or str(getattr(model.cfg, "model_name", "") or "")
    if cfg.heads:
        rm = ReplacementModel(model, transcoders)
        graph.head_paths = head_paths(
            rm, rm.clean_state(tokens), graph, cfg.attribution.batch_size, cfg.min_head_fraction, cfg.same_position_heads
        )
    graph.feature_info = describe_features(model, transcoders, graph, context_tokens)
    return graph


@dataclass
class CircuitTraceConfig:
    """Trace a prompt through transcoders into an attribution graph and write it as
    Neuronpedia JSON, GraphML, a self-contained HTML page and graph.pt."""

    prompt: str
    """The prompt to trace, e.g. "The war lasted from the year 1745 to the year 17"."""
    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    transcoders: str = "runs/tc"
    """Run directory written by `interp transcoder train` (or one saved transcoder)."""
    target: str | None = None
    """Token whose logit is explained, e.g. ' 45' (default: the most probable next token)."""
    out: str = "graph"
    """Directory for graph.json, graph.graphml, graph.html and graph.pt."""
    contexts: int = 64
    """Sequences of --data scanned for each feature's top activating contexts (0: none)."""
    data: str = "reference"
    """Token source for the contexts: 'reference' (as plain text for other tokenizers), a .txt/.jsonl file, or a Hugging Face dataset name."""
    dataset: str | None = None
    """Deprecated: the old name of --data."""
    device: str = "cpu"
    """Device to run on."""
    trace: TraceConfig = field(default_factory=TraceConfig)
    """Attribution, pruning and head-path settings."""

    def __post_init__(self) -> None:
        from interp.data import data_option

        self.data, self.dataset = data_option(self.data, self.dataset), None
        if self.contexts < 0:
            raise ConfigError(f"--contexts must be at least 0, got {self.contexts}")


def dataset_contexts(model, data: str, n: int, ctx_len: int = 64) -> Int[Tensor, "n ctx"] | None:
    """``n`` sequences of ``ctx_len`` tokens from the source ``data`` (None when n is 0 or the model
    has no tokenizer), in which :func:`trace` finds each feature's top activating contexts."""
    if n == 0 or getattr(model, "tokenizer", None) is None:
        return None
    from interp.data import load_contexts

    return load_contexts(data, model.tokenizer, n, min(ctx_len, model.cfg.n_ctx), seed=0)


def run(cfg: CircuitTraceConfig) -> Graph:
    """Load the model and transcoders ``cfg`` names and trace its prompt (what
    ``interp circuit trace`` runs; write the result with ``graph.write(cfg.out)``)."""
    from interp.models import load_model

    model = load_model(cfg.model, device=cfg.device)
    prompt_tokens(model, cfg.prompt)  # an empty prompt fails before the transcoders and contexts load
    transcoders = load_run(cfg.transcoders, device=cfg.device)
    contexts = dataset_contexts(model, cfg.data, cfg.contexts)
    return trace(model, transcoders, cfg.prompt, target=cfg.target, cfg=cfg.trace, context_tokens=contexts,
                 model_name=cfg.model)
