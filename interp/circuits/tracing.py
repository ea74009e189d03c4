"""From a prompt to a pruned, annotated attribution graph: :func:`trace` for a model and
transcoders in hand, :func:`run` for a config that names them (what ``interp circuit trace``
calls).

The settings nest rather than repeat: :class:`CircuitTraceConfig` (what to load, the prompt,
the target) holds a :class:`TraceConfig` (pruning, head paths, default targets), which holds
the :class:`~interp.circuits.attribution.AttributionConfig` that :func:`attribute` reads.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
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
from interp.circuits.dictionary import Dictionary, as_dictionary
from interp.circuits.features import describe_features
from interp.circuits.graph import Graph, prune
from interp.circuits.replacement import ReplacementModel
from interp.circuits.threads import choose_threads
from interp.config import check_fraction
from interp.errors import ConfigError, TargetError
from interp.transcoders.clt import CrossLayerTranscoder
from interp.transcoders.loading import check_trained_on, load_run


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
    max_n_logits: int = 10
    """Without a target: trace at most this many of the most probable next tokens (circuit-tracer's default, 10)."""
    desired_logit_prob: float = 0.95
    """Without a target: trace the fewest most probable next tokens whose probabilities sum to this (circuit-tracer's 0.95), capped by --max-n-logits."""
    # deprecated keywords of the flat TraceConfig: TraceConfig(batch_size=8) sets
    # attribution.batch_size and warns; no flags (the CLI's --batch-size and --progress are
    # the nested AttributionConfig's). TraceConfig(n_top_logits=k), the old "k most probable
    # tokens", is max_n_logits=k with desired_logit_prob=1.0 and warns.
    batch_size: InitVar[int | None] = sp_field(default=None, cmd=False)  # noqa: RUF009 - a default of None, no flag
    progress: InitVar[bool | None] = sp_field(default=None, cmd=False)  # noqa: RUF009 - a default of None, no flag
    n_top_logits: InitVar[int | None] = sp_field(default=None, cmd=False)  # noqa: RUF009 - a default of None, no flag

    def __post_init__(self, batch_size: int | None, progress: bool | None, n_top_logits: int | None) -> None:
        if n_top_logits is not None:
            if n_top_logits < 1:
                raise ConfigError(f"n_top_logits must be at least 1, got {n_top_logits}")
            warnings.warn(
                f"TraceConfig(n_top_logits={n_top_logits}) is deprecated: pass "
                f"TraceConfig(max_n_logits={n_top_logits}, desired_logit_prob=1.0)",
                DeprecationWarning,
                stacklevel=3,
            )
            self.max_n_logits, self.desired_logit_prob = n_top_logits, 1.0
        shortcuts = {k: v for k, v in (("batch_size", batch_size), ("progress", progress)) if v is not None}
        if shortcuts:
            given = ", ".join(f"{k}={v!r}" for k, v in shortcuts.items())
            warnings.warn(
                f"TraceConfig({given}) is deprecated: pass TraceConfig(attribution=AttributionConfig({given}))",
                DeprecationWarning,
                stacklevel=3,
            )
            self.attribution = replace(self.attribution, **shortcuts)
        for name in ("node_threshold", "edge_threshold", "min_head_fraction", "desired_logit_prob"):
            check_fraction(f"--{name.replace('_', '-')}", getattr(self, name))
        if self.max_n_logits < 1:
            raise ConfigError(f"--max-n-logits must be at least 1, got {self.max_n_logits}")


def prompt_tokens(model, prompt: str | Tensor | Sequence[int]) -> Int[Tensor, " pos"]:
    """Token ids of a prompt (a string gets the model's BOS token prepended). Refused, each with
    one sentence (:class:`TargetError`): an empty prompt, also as a string (which would otherwise
    be traced as the BOS token alone), one longer than the model's context (never cut short),
    and ids outside the vocabulary."""
    from interp.models import check_tokens

    if isinstance(prompt, str):
        if not prompt:
            raise TargetError("the prompt is empty: give the text to trace")
        if getattr(model, "tokenizer", None) is None:
            raise TargetError("this model has no tokenizer: pass the prompt as token ids")
        tokens = model.to_tokens(prompt, truncate=False)[0].cpu()
    else:
        tokens = torch.as_tensor(prompt).reshape(-1)
        if tokens.numel() == 0:
            raise TargetError("the prompt is empty: give at least one token id to trace")
    check_tokens(model, tokens, error=TargetError)
    return tokens


def salient_targets(
    model, tokens: Int[Tensor, " pos"], max_n_logits: int = 10, desired_logit_prob: float = 0.95
) -> list[LogitTarget]:
    """circuit-tracer's default targets: the most probable next tokens, as few as sum to
    ``desired_logit_prob`` of the probability, at most ``max_n_logits``, most probable first."""
    with torch.no_grad():
        last = model(tokens[None].to(model.cfg.device))[0, -1].float().cpu()
    top_p, top_idx = torch.topk(torch.softmax(last, -1), min(max_n_logits, last.numel()))
    cutoff = int(torch.searchsorted(torch.cumsum(top_p, 0), torch.tensor(desired_logit_prob))) + 1
    return [token_target(model, int(t)) for t in top_idx[:cutoff]]


Target = str | int | LogitTarget | Tensor | Sequence[str | int | LogitTarget] | None


def resolve_targets(model, tokens: Int[Tensor, " pos"], target: Target, cfg: TraceConfig | None = None) -> list[LogitTarget]:
    """The logit targets :func:`trace` attributes from: ``target`` as given (a token string or
    id, a :class:`LogitTarget` such as a logit difference, a tensor of token ids, or a list of
    tokens and targets), or when None the salient next tokens (:func:`salient_targets` with
    ``cfg``'s ``max_n_logits`` and ``desired_logit_prob``)."""
    cfg = cfg or TraceConfig()
    if target is None:
        return salient_targets(model, tokens, cfg.max_n_logits, cfg.desired_logit_prob)
    if isinstance(target, (str, int, LogitTarget)):
        target = [target]
    elif isinstance(target, Tensor):
        target = [int(t) for t in target.reshape(-1)]
    targets = [t if isinstance(t, LogitTarget) else _token(model, t) for t in target]
    if not targets:
        raise TargetError("the target list is empty: give a token, a LogitTarget, a list of them, or None")
    return targets


def _token(model, token: object) -> LogitTarget:
    if isinstance(token, (str, int)):
        return token_target(model, token)
    raise TargetError(f"a target is a token (string or id) or a LogitTarget, got {type(token).__name__}: {token!r}")


def trace(
    model,
    transcoders: Mapping[int, object] | CrossLayerTranscoder | Dictionary,
    prompt: str | Tensor | Sequence[int],
    target: Target = None,
    cfg: TraceConfig | None = None,
    context_tokens: Int[Tensor, "batch pos"] | None = None,
    model_name: str = "",
    *,
    force: bool = False,
) -> Graph:
    """Attribute, prune, split edges over heads and describe features.

    ``transcoders``: ``{layer: transcoder}`` or one cross-layer transcoder (what
    :func:`interp.transcoders.load_run` returns for either kind of run).

    ``target``: a token (string or id), a :class:`LogitTarget` (e.g. a logit difference),
    a list of them or a tensor of token ids, or None for the most probable next tokens as
    circuit-tracer picks them (``cfg.max_n_logits``, ``cfg.desired_logit_prob``; see
    :func:`resolve_targets`).
    ``context_tokens`` ([batch, pos]) supply each feature's top activating contexts.
    ``model_name`` is recorded in the graph and its exports (default: ``model.cfg.model_name``).
    Transcoders whose files say they were trained on another model are refused unless ``force``;
    the graph records a forced use in ``transcoders_forced``.
    """
    cfg = cfg or TraceConfig()
    tokens = prompt_tokens(model, prompt)
    given = transcoders
    transcoders = as_dictionary(model, given, force=force)
    targets = resolve_targets(model, tokens, target, cfg)
    full = attribute(model, transcoders, tokens, targets, cfg.attribution, prompt=prompt if isinstance(prompt, str) else None)
    with choose_threads(cfg.attribution.threads):  # the count attribution measured (interp.circuits.threads)
        graph = prune(full, cfg.node_threshold, cfg.edge_threshold)
        graph.model_name = model_name or str(getattr(model.cfg, "model_name", "") or "")
        graph.transcoders_forced = None if isinstance(given, Dictionary) else check_trained_on(model, given)
        if cfg.heads:
            rm = ReplacementModel(model, transcoders)
            graph.head_paths = head_paths(
                rm, rm.clean_state(tokens), graph, cfg.attribution.batch_size, cfg.min_head_fraction,
                cfg.same_position_heads, threads=cfg.attribution.threads,
            )
        graph.feature_info = describe_features(model, transcoders, graph, context_tokens)
    return graph


@dataclass
class CircuitTraceConfig:
    """Trace a prompt through transcoders into an attribution graph and write it as
    circuit-tracer / Neuronpedia graph JSON (also in circuit-tracer's server folder), GraphML,
    a self-contained HTML page and graph.pt."""

    prompt: str
    """The prompt to trace, e.g. "The war lasted from the year 1745 to the year 17"."""
    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    transcoders: str = "runs/tc"
    """Run directory written by `interp transcoder train`, per-layer or cross-layer (--arch clt), or one saved transcoder, or a CLT directory in circuit-tracer's layout."""
    target: str | None = None
    """Token whose logit is explained, e.g. ' 45' (default: the most probable next tokens, see --max-n-logits and --desired-logit-prob)."""
    out: str = "graph"
    """Directory for graph.json, graph.graphml, graph.html, graph.pt and graph_files/ (circuit-tracer's server folder)."""
    contexts: int = 64
    """Sequences of --data scanned for each feature's top activating contexts (0: none)."""
    data: str = "reference"
    """Token source for the contexts: 'reference' (as plain text for other tokenizers), a .txt/.jsonl file, or a Hugging Face dataset name."""
    dataset: str | None = None
    """Deprecated: the old name of --data."""
    device: str = "cpu"
    """Device to run on."""
    force: bool = False
    """Use transcoders trained on another model (refused by default: their fingerprint differs); the graph records it."""
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
                 model_name=cfg.model, force=cfg.force)
