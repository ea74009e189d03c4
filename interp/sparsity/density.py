"""How sparse are MLP activations? Per-layer densities, per-neuron frequencies, per-token counts.

The Lazy Neuron Phenomenon (Li et al. 2023) finds that only a few percent of MLP
activations are nonzero in trained ReLU transformers (3.0% in T5-Base). For GELU models
such as GPT-2 an activation is exactly zero only by accident, so "nonzero" is nearly 1;
the meaningful count is of *positive pre-activations* (the inputs that GELU passes
through roughly linearly). :func:`measure` reports, per layer, on a token stream:

- ``nonzero``: fraction of activations (``hook_post``) that are exactly nonzero;
- ``positive``: fraction of pre-activations (``hook_pre``) that are > 0;
- ``above``: fraction of activations greater than ``threshold`` (in size, for gated MLPs);
- ``deft``: the density measure of DEFT, ``mean(a^2 / (a^2 + eps))``: a smooth,
  differentiable count of nonzeros (near 1 where ``|a| >> sqrt(eps)``, 0 at 0), which
  DEFT uses as a loss term to make activations sparser during fine-tuning;
- per neuron, the frequency of a positive pre-activation (dead: never, dense: above
  ``dense_frequency``), and per token, a histogram of how many neurons are positive.

**Gated MLPs** (Llama, Gemma, Qwen, Mistral): a neuron's activation (``hook_post``) is the
gated product ``act(x @ W_gate[:, n]) * (x @ W_in[:, n])``, and that product is what every
count of activations measures (``nonzero``, ``above``, DEFT). ``hook_pre`` is the gate's
pre-activation ``x @ W_gate``, so ``positive`` (and the per-neuron frequencies, dead and dense
neurons, per-token counts) counts *open gates*, where SiLU or GELU passes its input through
roughly linearly. The product's sign is the linear branch's, so a large negative product is
as active as a large positive one: :func:`activation_strength` is ``|a|`` there, and
``above``, top-k thresholding and CoreInfer's core neurons rank by it (:func:`signed_activations`).
Elsewhere (GELU, ReLU, SoLU after its LayerNorm) activations rank by value, as the papers do.

The library never prints; :class:`SparsityResult` is a :class:`~interp.results.Result`
(``save``/``load``, ``summary()``, ``to_html()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Int
from torch import Tensor

from interp.config import Layers, parse_layers
from interp.errors import ConfigError
from interp.hooks import resolve
from interp.reports.tables import layer_span
from interp.results import Result


@dataclass
class LayerSparsity:
    """Sparsity of one layer's MLP activations."""

    layer: int
    n_tokens: int
    nonzero: float
    """Fraction of activations exactly nonzero."""
    positive: float
    """Fraction of pre-activations > 0."""
    above: float
    """Fraction of activations > the threshold."""
    deft: float
    """Mean of a^2 / (a^2 + eps) over activations."""
    frequency: list[float]
    """Per neuron: fraction of tokens with a positive pre-activation."""
    nonzero_frequency: list[float]
    """Per neuron: fraction of tokens with a nonzero activation."""
    token_counts: list[int]
    """Histogram: token_counts[c] tokens had exactly c neurons with a positive pre-activation."""
    dead: int
    """Neurons never positive on the stream."""
    dense: int
    """Neurons positive on more than dense_frequency of tokens."""

    @property
    def mean_active_per_token(self) -> float:
        total = sum(self.token_counts)
        return sum(c * n for c, n in enumerate(self.token_counts)) / max(1, total)

    def describe(self) -> str:
        """One line: the layer's densities and neuron counts."""
        return (f"layer {self.layer}: nonzero {self.nonzero:.4f}, positive {self.positive:.4f}, above {self.above:.4f}, "
                f"DEFT {self.deft:.4f}, dead {self.dead}, dense {self.dense}, {self.mean_active_per_token:.1f} active/token")

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        return plain_repr("LayerSparsity", f"{self.n_tokens:,} tokens, {len(self.frequency):,} neurons",
                          [self.describe()])

    def _repr_html_(self) -> str:
        from interp.sparsity.html import layer_summary

        return layer_summary(self)


@dataclass
class SparsityResult(Result):
    """Per-layer sparsity of a model's MLPs on a token stream (what :func:`measure` returns)."""

    stem: ClassVar[str] = "sparsity"
    title: ClassVar[str] = "MLP activation sparsity"

    model_name: str
    threshold: float
    deft_eps: float
    dense_frequency: float
    skip_first: bool
    layers: list[LayerSparsity]

    def mean(self, field: str) -> float:
        """A density averaged over layers (each layer sees the same tokens and neurons, so this is the overall fraction)."""
        if field not in ("nonzero", "positive", "above", "deft"):
            raise ConfigError(f"field must be 'nonzero', 'positive', 'above' or 'deft', got {field!r}")
        return sum(getattr(s, field) for s in self.layers) / len(self.layers) if self.layers else float("nan")

    def _headline(self) -> str:
        tokens = self.layers[0].n_tokens if self.layers else 0
        return (f"model {self.model_name!r}, {layer_span([s.layer for s in self.layers])}, {tokens:,} tokens: "
                f"positive {self.mean('positive'):.4f}, nonzero {self.mean('nonzero'):.4f}, "
                f"DEFT {self.mean('deft'):.4f} (all layers)")

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        return plain_repr("SparsityResult", self._headline(), [s.describe() for s in self.layers])

    def summary(self) -> str:
        """The headline, then per layer: densities, dead and dense neurons, positive neurons per token."""
        lines = [self._headline(), "layer  nonzero  positive  >thr    DEFT    dead  dense  active/token"]
        for s in self.layers:
            lines.append(
                f"{s.layer:5d}  {s.nonzero:7.4f}  {s.positive:8.4f}  {s.above:6.4f}  {s.deft:6.4f}  "
                f"{s.dead:5d}  {s.dense:5d}  {s.mean_active_per_token:12.1f}"
            )
        return "\n".join(lines)

    def to_html(self) -> str:
        from interp.sparsity.html import sparsity_page

        return sparsity_page(self)

    def _repr_html_(self) -> str:
        from interp.sparsity.html import sparsity_summary

        return sparsity_summary(self)


def signed_activations(model) -> bool:
    """True when a neuron's activation is signed by its input rather than switched off at
    zero: the gated product of a gated MLP, whose sign is the linear branch's (see the module docstring)."""
    return bool(getattr(model.cfg, "gated_mlp", False))


def activation_strength(model, activations: Tensor) -> Tensor:
    """How strongly each neuron is active: ``|a|`` for :func:`signed_activations`, ``a`` otherwise."""
    return activations.abs() if signed_activations(model) else activations


def deft_density(activations: Tensor, eps: float) -> Tensor:
    """DEFT's smooth density ``a^2 / (a^2 + eps)`` elementwise: ~1 where |a| >> sqrt(eps), 0 at 0."""
    squared = activations.float().square()
    return squared / (squared + eps)


class _Accumulator:
    def __init__(self, d_mlp: int, device) -> None:
        self.tokens = 0
        self.nonzero = torch.zeros(d_mlp, dtype=torch.float64, device=device)
        self.positive = torch.zeros(d_mlp, dtype=torch.float64, device=device)
        self.above = 0.0
        self.deft = 0.0
        self.counts = torch.zeros(d_mlp + 1, dtype=torch.float64, device=device)

    def add(self, pre: Tensor, post: Tensor, strength: Tensor, threshold: float, eps: float) -> None:
        pre = pre.reshape(-1, pre.shape[-1])
        post = post.reshape(-1, post.shape[-1])
        self.tokens += pre.shape[0]
        positive = pre > 0
        self.positive += positive.sum(0, dtype=torch.float64)
        self.nonzero += (post != 0).sum(0, dtype=torch.float64)
        self.above += float((strength.reshape(post.shape) > threshold).sum())
        self.deft += float(deft_density(post, eps).sum(dtype=torch.float64))
        self.counts += torch.bincount(positive.sum(1), minlength=self.counts.numel()).double()


@torch.no_grad()
def measure(
    model,
    batches: Iterable[Int[Tensor, "batch pos"]],
    layers: Layers | int | Sequence[int] = None,
    threshold: float = 0.1,
    deft_eps: float = 1e-2,
    dense_frequency: float = 0.5,
    max_batches: int | None = None,
    skip_first: bool = True,
    progress: bool = True,
) -> SparsityResult:
    """Measure the sparsity of each layer's MLP activations on ``batches`` of tokens.

    Args:
        batches: ``[batch, pos]`` token tensors (e.g. from :func:`interp.data.token_batches`).
        layers: the layers to measure: ``'0,2'``, ``'0-3'``, a list, or None for all.
        threshold: the "fraction above a threshold" counts activations > this (``|a|`` > this
            for gated MLPs, see :func:`activation_strength`).
        deft_eps: the epsilon of the DEFT density a^2 / (a^2 + eps).
        dense_frequency: a neuron positive on more than this fraction of tokens is "dense".
        max_batches: stop after this many batches (needed for endless streams).
        skip_first: leave out position 0 (BOS), whose activations are atypical.
        progress: show a progress bar over the batches (a notebook bar in Jupyter, text in a terminal).
    """
    from tqdm.auto import tqdm

    if deft_eps <= 0:
        raise ConfigError(f"deft_eps must be positive, got {deft_eps}")
    if not 0 <= dense_frequency <= 1:
        raise ConfigError(f"dense_frequency must be in [0, 1], got {dense_frequency}")
    layers = parse_layers(layers, model.cfg.n_layers)
    pre_names = resolve(model, "pre", layers)
    post_names = resolve(model, "post", layers)
    device = next(model.parameters()).device
    accs = [_Accumulator(model.cfg.d_mlp, device) for _ in pre_names]
    n = 0
    bar = tqdm(batches, desc="sparsity", unit="batch", total=max_batches, disable=not progress, leave=False)
    for tokens in bar:
        if max_batches is not None and n >= max_batches:
            break
        _, cache = model.run_with_cache(tokens.to(device), names_filter=pre_names + post_names)
        start = 1 if skip_first else 0
        for acc, pre, post in zip(accs, pre_names, post_names):
            post_acts = cache[post][:, start:]
            acc.add(cache[pre][:, start:], post_acts, activation_strength(model, post_acts), threshold, deft_eps)
        n += 1
    if n == 0 or accs[0].tokens == 0:
        raise ConfigError("no tokens were measured: pass at least one batch with more than one position")
    out = []
    for name, acc in zip(pre_names, accs):
        tokens = acc.tokens
        frequency = acc.positive / tokens
        total = tokens * model.cfg.d_mlp
        out.append(
            LayerSparsity(
                layer=int(name.split(".")[1]),
                n_tokens=tokens,
                nonzero=float(acc.nonzero.sum() / total),
                positive=float(acc.positive.sum() / total),
                above=acc.above / total,
                deft=acc.deft / total,
                frequency=frequency.tolist(),
                nonzero_frequency=(acc.nonzero / tokens).tolist(),
                token_counts=[int(c) for c in acc.counts.tolist()],
                dead=int((acc.positive == 0).sum()),
                dense=int((frequency > dense_frequency).sum()),
            )
        )
    return SparsityResult(model.cfg.model_name, threshold, deft_eps, dense_frequency, skip_first, out)
