"""How much each attention layer, MLP and block changes the residual stream.

Following "What Matters in Transformers? Not All Attention is Needed" (He et al. 2024,
code: LLM-Drop), a module's importance is ``1 - cos(input, output)``, per token, averaged
over every token of a calibration set:

==========  =======================  ===========================================
kind        input                    output
==========  =======================  ===========================================
attn        ``resid_pre``            ``resid_mid``  (= resid_pre + attn_out)
mlp         ``resid_mid``            ``resid_post`` (= resid_mid + mlp_out)
block       ``resid_pre``            ``resid_post``
==========  =======================  ===========================================

The *output* variant (LLM-Drop with ``drop_norm=False``) compares the module's normalised
input (``ln1.hook_normalized`` / ``ln2.hook_normalized``) with what it writes
(``hook_attn_out`` / ``hook_mlp_out``; for a block, their sum and ``ln1``'s input).

Architectures: ``hook_attn_out`` / ``hook_mlp_out`` hold what a sublayer adds to the residual
stream, after any post-sublayer norm (Gemma 2's ``ln1_post`` / ``ln2_post``, OLMo 2's
post-norm), so every score above is defined there. With parallel attention and MLP
(GPT-NeoX/Pythia, GPT-J: ``resid_post = resid_pre + attn_out + mlp_out``) no ``resid_mid``
exists: the residual scores of attention and MLP are NaN, the result's ``notes`` say so in
one sentence, and rankings of attention or MLP use the output variant (where the MLP's input
is ``ln2`` of ``resid_pre``). Post-norm blocks (OLMo 2) read the residual stream itself, so
their output variant compares with ``resid_pre`` / ``resid_mid``.

Sums of ``1 - cos`` and token counts are accumulated in float64 across batches, never
per-batch means, so the scores (and hence the rankings) do not depend on the batch size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, NamedTuple

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import ConfigError, RedundancyError
from interp.results import Result

logger = logging.getLogger(__name__)

Kind = Literal["attn", "mlp", "block"]
KINDS: tuple[str, ...] = ("attn", "mlp", "block")
Metric = Literal["residual", "output"]
METRICS: tuple[str, ...] = ("residual", "output")


class Module(NamedTuple):
    """One droppable module: an attention layer, an MLP, or a whole block."""

    kind: str
    layer: int

    def __str__(self) -> str:
        return f"{self.kind}.{self.layer}"

    @classmethod
    def parse(cls, text: str) -> Module:
        """``"attn.3"`` -> ``Module("attn", 3)``."""
        kind, _, layer = text.partition(".")
        if kind not in KINDS or not layer.isdigit():
            raise ConfigError(f"not a module name: {text!r}; expected KIND.LAYER with KIND in {KINDS}, e.g. 'attn.3'")
        return cls(kind, int(layer))


def check_model(model) -> None:
    """Raise RedundancyError unless ``model`` has attention and MLP sublayers to measure and drop."""
    if model.cfg.attn_only:
        raise RedundancyError("the model is attention-only (cfg.attn_only): it has no MLPs to measure or drop")


PARALLEL_NOTE = (
    "attention and MLP run in parallel here (cfg.parallel_attn_mlp, as in GPT-NeoX/Pythia and GPT-J), so no residual "
    "stream lies between them and their residual importance is undefined (NaN): blocks are measured as usual, and "
    "attention and MLP are ranked by the output variant"
)
"""Why the residual importance of attention and MLP is skipped on parallel blocks."""


def undefined_scores(model) -> dict[str, str]:
    """Importance scores ``model``'s architecture leaves undefined: ``{kind: why, in one sentence}``.

    Only the residual metric of attention and MLP on parallel blocks (``resid_post =
    resid_pre + attn_out + mlp_out``, no ``resid_mid``) is undefined. Post-sublayer norms
    (Gemma 2's ``ln1_post``/``ln2_post``) are no obstacle: ``hook_attn_out`` and
    ``hook_mlp_out`` are taken after them, so they hold exactly what is added to the residual.
    """
    return {"attn": PARALLEL_NOTE, "mlp": PARALLEL_NOTE} if model.cfg.parallel_attn_mlp else {}


def _reads_residual_directly(model) -> bool:
    """True for post-norm blocks (OLMo 2/3), whose ``ln1``/``ln2`` normalise the sublayer's output, not its input."""
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    return model.cfg.original_architecture in POST_NORM_ARCHITECTURES


def _batches(tokens: Int[Tensor, "n pos"], batch_size: int | None) -> Iterable[Tensor]:
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < 2:
        raise ConfigError(f"tokens must be a non-empty (n_sequences, pos) tensor with pos >= 2, got shape {tuple(tokens.shape)}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    size = batch_size or tokens.shape[0]
    return tokens.split(size)


def token_mask(tokens: Tensor, include_bos: bool, bos_token_id: int | None) -> Tensor:
    """Which tokens count: all of them, or all but BOS tokens (by id, wherever they occur)."""
    if include_bos:
        return torch.ones_like(tokens, dtype=torch.bool)
    if bos_token_id is None:
        raise ConfigError("include_bos=False needs the BOS id: the model has no tokenizer, so pass bos_token_id=")
    return tokens != bos_token_id


def _one_minus_cos(a: Tensor, b: Tensor) -> Tensor:
    """Per-token ``1 - cos(a, b)`` in float64 (a zero vector has cosine 0, as in torch)."""
    return 1.0 - torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1, eps=1e-12)


@dataclass
class Importance(Result):
    """Per-layer importance of every attention layer, MLP and block (index = layer)."""

    stem: ClassVar[str] = "importance"
    title: ClassVar[str] = "Importance (low = redundant)"

    attn: list[float]
    mlp: list[float]
    block: list[float]
    attn_output: list[float]
    """The output variant: 1 - cos(normalised input, module output)."""
    mlp_output: list[float]
    block_output: list[float]
    n_tokens: int
    """Tokens averaged over."""
    include_bos: bool
    dropped: list[str] = field(default_factory=list)
    """Modules zero-ablated while measuring (iterative dropping); their scores are meaningless."""
    notes: list[str] = field(default_factory=list)
    """What the architecture leaves undefined (NaN scores) and what is done instead, one sentence each."""

    @property
    def n_layers(self) -> int:
        return len(self.attn)

    def score(self, module: Module, metric: str = "residual") -> float:
        """The module's score (NaN where the architecture leaves it undefined: see :attr:`notes`)."""
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {METRICS}, got {metric!r}")
        values = getattr(self, module.kind if metric == "residual" else f"{module.kind}_output")
        return values[module.layer]

    def metric_for(self, kinds: Sequence[str], metric: str = "residual") -> str:
        """``metric``, or ``"output"`` when the residual score of one of ``kinds`` is undefined (parallel blocks)."""
        if metric == "residual" and any(math.isnan(v) for kind in kinds for v in getattr(self, kind)):
            return "output"
        return metric

    def ranking(self, kinds: Sequence[str] = ("attn", "mlp"), metric: str = "residual", exclude: Iterable[Module] = ()) -> list[Module]:
        """Modules of ``kinds``, least important (most redundant) first, by :meth:`metric_for` ``(kinds, metric)``.

        Ties are broken by layer, then by kind in ``kinds`` order, so the order is a
        pure function of the scores.
        """
        metric = self.metric_for(kinds, metric)
        excluded = set(exclude)
        candidates = [Module(k, layer) for layer in range(self.n_layers) for k in kinds if Module(k, layer) not in excluded]
        return sorted(candidates, key=lambda m: (self.score(m, metric), m.layer, list(kinds).index(m.kind)))

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        metric = self.metric_for(("attn", "mlp"))
        lowest = ", ".join(f"{m} {self.score(m, metric):.4f}" for m in self.ranking()[:3])
        head = f"{self.n_layers} layers, {self.n_tokens:,} tokens, BOS {'counted' if self.include_bos else 'not counted'}"
        lines = [f"most redundant ({metric}): {lowest}", *self.notes]
        if self.dropped:
            lines.append(f"measured with {len(self.dropped)} module(s) dropped")
        return plain_repr("Importance", head, lines)

    def _repr_html_(self) -> str:
        from interp.redundancy.html import importance_block

        return importance_block(self)

    def summary(self) -> str:
        """The scores as a text table, one row per layer (after the notes, if any)."""
        lines = [*self.notes, f"{'layer':>5s} {'attn':>9s} {'mlp':>9s} {'block':>9s}   {'attn_out':>9s} {'mlp_out':>9s} {'block_out':>9s}"]
        for layer in range(self.n_layers):
            lines.append(
                f"{layer:5d} {self.attn[layer]:9.5f} {self.mlp[layer]:9.5f} {self.block[layer]:9.5f}   "
                f"{self.attn_output[layer]:9.5f} {self.mlp_output[layer]:9.5f} {self.block_output[layer]:9.5f}"
            )
        return "\n".join(lines)

    def table(self) -> str:
        """The older name of :meth:`summary`."""
        return self.summary()


@torch.no_grad()
def importance(
    model,
    tokens: Int[Tensor, "n pos"],
    batch_size: int | None = None,
    include_bos: bool = True,
    bos_token_id: int | None = None,
    dropped: Iterable[Module] = (),
) -> Importance:
    """Importance of every attention layer, MLP and block of ``model`` on ``tokens``.

    Args:
        model: a HookedTransformer with attention and MLP sublayers: sequential or parallel
            (then the residual scores of attention and MLP are NaN; see :func:`undefined_scores`),
            pre-norm, with post-sublayer norms (Gemma 2) or post-norm (OLMo 2).
        tokens: calibration sequences, ``(n_sequences, pos)``.
        batch_size: sequences per forward pass (all at once when None); the result
            does not depend on it.
        include_bos: count BOS tokens in the average (LLM-Drop does: it averages over
            every token). BOS is recognised by id, ``bos_token_id`` or the tokenizer's.
        dropped: modules to zero-ablate while measuring (for iterative dropping).
    """
    from interp.hooks import hook_name, validate
    from interp.redundancy.dropping import ablated

    check_model(model)
    if bos_token_id is None and getattr(model, "tokenizer", None) is not None:
        bos_token_id = model.tokenizer.bos_token_id
    n_layers = model.cfg.n_layers
    undefined = undefined_scores(model)
    parallel = bool(model.cfg.parallel_attn_mlp)
    names = ("resid_pre", "resid_post", "attn_out", "mlp_out") + (() if parallel else ("resid_mid",))
    validate(model, [hook_name(site, layer) for site in names for layer in range(n_layers)])
    # The normalised input of each sublayer, where it has one (post-norm blocks read the residual itself).
    normed = not _reads_residual_directly(model)
    sums = {key: torch.zeros(n_layers, dtype=torch.float64) for key in ("attn", "mlp", "block", "attn_output", "mlp_output", "block_output")}
    count = 0
    store: dict[str, Tensor] = {}
    mask: Tensor | None = None

    def keep(key: str):
        def hook(value, hook):
            store[key] = value
        return hook

    def finish(layer: int):
        def hook(resid_post, hook):
            pre = store[f"pre{layer}"]
            mid = pre if parallel else store[f"mid{layer}"]  # the MLP's residual input
            attn_out, mlp_out = store[f"attn_out{layer}"], store[f"mlp_out{layer}"]
            n1, n2 = store.get(f"n1_{layer}", pre), store.get(f"n2_{layer}", mid)
            terms = {
                "block": _one_minus_cos(pre, resid_post),
                "attn_output": _one_minus_cos(n1, attn_out),
                "mlp_output": _one_minus_cos(n2, mlp_out),
                "block_output": _one_minus_cos(n1, attn_out + mlp_out),
            }
            if not parallel:
                terms.update(attn=_one_minus_cos(pre, mid), mlp=_one_minus_cos(mid, resid_post))
            for key, value in terms.items():
                sums[key][layer] += value[mask].sum()
        return hook

    fwd_hooks = []
    for layer in range(n_layers):
        fwd_hooks += [
            (hook_name("resid_pre", layer), keep(f"pre{layer}")),
            (hook_name("attn_out", layer), keep(f"attn_out{layer}")),
            (hook_name("mlp_out", layer), keep(f"mlp_out{layer}")),
        ]
        if not parallel:
            fwd_hooks.append((hook_name("resid_mid", layer), keep(f"mid{layer}")))
        for key, name in ((f"n1_{layer}", f"blocks.{layer}.ln1.hook_normalized"), (f"n2_{layer}", f"blocks.{layer}.ln2.hook_normalized")):
            if normed and name in model.hook_dict:
                fwd_hooks.append((name, keep(key)))
        fwd_hooks.append((hook_name("resid_post", layer), finish(layer)))

    dropped = list(dropped)
    with ablated(model, dropped), model.hooks(fwd_hooks=fwd_hooks):
        for batch in _batches(tokens, batch_size):
            mask = token_mask(batch, include_bos, bos_token_id).to(model.cfg.device)
            count += int(mask.sum())
            model(batch.to(model.cfg.device), return_type=None)
            store.clear()
    if count == 0:
        raise ConfigError("no tokens to average over: every token is BOS; pass longer sequences or include_bos=True")
    means = {key: (value / count).tolist() for key, value in sums.items()}
    for key in undefined:
        means[key] = [float("nan")] * n_layers
    notes = list(dict.fromkeys(undefined.values()))
    return Importance(**means, n_tokens=count, include_bos=include_bos, dropped=[str(m) for m in dropped], notes=notes)


def spearman(x: Sequence[int | float], y: Sequence[int | float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant or holds a NaN."""
    if len(x) != len(y):
        raise ConfigError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if len(x) < 2 or any(math.isnan(v) for v in (*x, *y)):
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = (rx.pow(2).sum() * ry.pow(2).sum()).sqrt()
    return float("nan") if denominator == 0 else float((rx * ry).sum() / denominator)


def _ranks(values: Sequence[int | float]) -> Tensor:
    data = torch.tensor(list(values), dtype=torch.float64)
    order = torch.argsort(data, stable=True)
    ranks = torch.empty_like(data)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and data[order[j + 1]] == data[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks
