"""Top-k thresholding of MLP activations: how much loss does keeping only k neurons cost?

Following the Lazy Neuron Phenomenon paper's top-k experiment (Li et al. 2023), every
token keeps only its ``k`` largest MLP activations (``hook_post``; for a gated MLP the gated
products, largest in size) in every chosen layer and the rest are set to zero; the loss increase as ``k`` shrinks says how many neurons a
token really needs. ``k = d_mlp`` keeps everything and changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.config import Layers, parse_layers
from interp.errors import ConfigError
from interp.hooks import resolve
from interp.reports.tables import layer_span
from interp.results import Result


def keep_topk(activations: Float[Tensor, "... d_mlp"], k: int, by_magnitude: bool = False) -> Float[Tensor, "... d_mlp"]:
    """Zero all but the ``k`` largest entries of the last dimension (largest in size with ``by_magnitude``)."""
    if not 1 <= k <= activations.shape[-1]:
        raise ConfigError(f"k must be in [1, {activations.shape[-1]}], got {k}")
    indices = (activations.abs() if by_magnitude else activations).topk(k, dim=-1).indices
    return torch.zeros_like(activations).scatter(-1, indices, activations.gather(-1, indices))


@contextlib.contextmanager
def topk_thresholding(model, k: int, layers: Layers | int | Sequence[int] = None) -> Iterator[None]:
    """Inside the block, each token keeps only its ``k`` largest activations in ``layers`` (all when None).

    In a gated MLP the activations are gated products and "largest" is largest in size
    (:func:`interp.sparsity.density.signed_activations`). The hooks are removed when the
    block exits, even on error.
    """
    from interp.sparsity.density import signed_activations

    names = resolve(model, "post", parse_layers(layers, model.cfg.n_layers))
    by_magnitude = signed_activations(model)
    if not 1 <= k <= model.cfg.d_mlp:
        raise ConfigError(f"k must be in [1, d_mlp={model.cfg.d_mlp}], got {k}")

    def threshold(activation: Tensor, hook) -> Tensor:
        return keep_topk(activation, k, by_magnitude)

    with model.hooks(fwd_hooks=[(name, threshold) for name in names]):
        yield


@dataclass
class TopKCurve(Result):
    """Loss as a function of k, the activations each token keeps per layer (what :func:`topk_curve` returns)."""

    stem: ClassVar[str] = "topk"
    title: ClassVar[str] = "Top-k thresholding of MLP activations"

    model_name: str
    layers: list[int]
    d_mlp: int
    n_tokens: int
    baseline_loss: float
    ks: list[int]
    losses: list[float]

    @property
    def increase(self) -> list[float]:
        """Loss minus the baseline loss, per k."""
        return [loss - self.baseline_loss for loss in self.losses]

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = (f"model {self.model_name!r}, {layer_span(self.layers)}, d_mlp {self.d_mlp}, {self.n_tokens:,} tokens: "
                f"baseline loss {self.baseline_loss:.4f}")
        lines = [f"k {k:5d}: loss {loss:.4f} ({inc:+.4f})" for k, loss, inc in zip(self.ks, self.losses, self.increase)]
        return plain_repr("TopKCurve", head, lines)

    def summary(self) -> str:
        """The baseline loss, then per k: k / d_mlp, the loss and its increase."""
        head = f"top-k thresholding of {layer_span(self.layers)}: baseline loss {self.baseline_loss:.4f} on {self.n_tokens} tokens"
        lines = [head, "    k  k/d_mlp   loss   increase"]
        lines += [f"{k:5d}  {k / self.d_mlp:7.3f}  {loss:.4f}  {inc:+.4f}" for k, loss, inc in zip(self.ks, self.losses, self.increase)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The fields plus ``increase``, for readers of the JSON (ignored on load)."""
        return {**super().to_dict(), "increase": self.increase}

    def to_html(self) -> str:
        from interp.sparsity.html import topk_page

        return topk_page(self)

    def _repr_html_(self) -> str:
        from interp.sparsity.html import topk_summary

        return topk_summary(self)


def default_ks(d_mlp: int) -> list[int]:
    """d_mlp times 1, 1/2, 1/4, 1/8, 1/16, 1/32, 1/64, 1/128 (at least 1, no repeats)."""
    ks: list[int] = []
    for divisor in (1, 2, 4, 8, 16, 32, 64, 128):
        k = max(1, d_mlp // divisor)
        if k not in ks:
            ks.append(k)
    return ks


@torch.no_grad()
def _loss(model, tokens: Tensor) -> float:
    return float(model(tokens, return_type="loss"))


@torch.no_grad()
def topk_curve(
    model,
    tokens: Int[Tensor, "batch pos"],
    ks: Sequence[int] | None = None,
    layers: Layers | int | Sequence[int] = None,
    progress: bool = True,
) -> TopKCurve:
    """Mean next-token loss on ``tokens`` with every layer in ``layers`` (all when None) top-k thresholded, per k.

    ``ks`` defaults to :func:`default_ks` (``d_mlp`` halved down to ``d_mlp / 128``).

    ``progress`` shows a bar over the values of k (a notebook bar in Jupyter, text in a terminal).
    """
    from tqdm.auto import tqdm

    layers = parse_layers(layers, model.cfg.n_layers)
    names = resolve(model, "post", layers)
    ks = list(ks) if ks is not None else default_ks(model.cfg.d_mlp)
    tokens = tokens.to(next(model.parameters()).device)
    losses = []
    for k in tqdm(ks, desc="top-k curve", unit="k", disable=not progress, leave=False):
        with topk_thresholding(model, k, layers):
            losses.append(_loss(model, tokens))
    return TopKCurve(
        model_name=model.cfg.model_name,
        layers=[int(n.split(".")[1]) for n in names],
        d_mlp=model.cfg.d_mlp,
        n_tokens=int(tokens.shape[0] * (tokens.shape[1] - 1)),
        baseline_loss=_loss(model, tokens),
        ks=ks,
        losses=losses,
    )
