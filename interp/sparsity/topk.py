"""Top-k thresholding of MLP activations: how much loss does keeping only k neurons cost?

Following the Lazy Neuron Phenomenon paper's top-k experiment (Li et al. 2023), every
token keeps only its ``k`` largest MLP activations (``hook_post``) in every chosen layer
and the rest are set to zero; the loss increase as ``k`` shrinks says how many neurons a
token really needs. ``k = d_mlp`` keeps everything and changes nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import ConfigError
from interp.hooks import resolve
from interp.io import atomic_write_text


def keep_topk(activations: Float[Tensor, "... d_mlp"], k: int) -> Float[Tensor, "... d_mlp"]:
    """Zero all but the ``k`` largest entries of the last dimension."""
    if not 1 <= k <= activations.shape[-1]:
        raise ConfigError(f"k must be in [1, {activations.shape[-1]}], got {k}")
    best = activations.topk(k, dim=-1)
    return torch.zeros_like(activations).scatter(-1, best.indices, best.values)


@contextlib.contextmanager
def topk_thresholding(model, k: int, layers: int | Sequence[int] | None = None) -> Iterator[None]:
    """Inside the block, each token keeps only its ``k`` largest activations in ``layers``.

    The hooks are removed when the block exits, even on error.
    """
    names = resolve(model, "mlp_post", layers)
    if not 1 <= k <= model.cfg.d_mlp:
        raise ConfigError(f"k must be in [1, d_mlp={model.cfg.d_mlp}], got {k}")

    def threshold(activation: Tensor, hook) -> Tensor:
        return keep_topk(activation, k)

    with model.hooks(fwd_hooks=[(name, threshold) for name in names]):
        yield


@dataclass
class TopKCurve:
    """Loss as a function of k, the activations each token keeps per layer."""

    model_name: str
    layers: list[int]
    d_mlp: int
    n_tokens: int
    baseline_loss: float
    ks: list[int]
    losses: list[float]

    @property
    def increase(self) -> list[float]:
        return [loss - self.baseline_loss for loss in self.losses]

    def __repr__(self) -> str:
        from interp.reports import layer_span, plain_repr

        head = (f"model {self.model_name!r}, {layer_span(self.layers)}, d_mlp {self.d_mlp}, {self.n_tokens:,} tokens: "
                f"baseline loss {self.baseline_loss:.4f}")
        lines = [f"k {k:5d}: loss {loss:.4f} ({inc:+.4f})" for k, loss, inc in zip(self.ks, self.losses, self.increase)]
        return plain_repr("TopKCurve", head, lines)

    def table(self) -> str:
        lines = [f"baseline loss {self.baseline_loss:.4f} on {self.n_tokens} tokens", "    k  k/d_mlp   loss   increase"]
        lines += [f"{k:5d}  {k / self.d_mlp:7.3f}  {loss:.4f}  {inc:+.4f}" for k, loss, inc in zip(self.ks, self.losses, self.increase)]
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps({**asdict(self), "increase": self.increase}, indent=2) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> TopKCurve:
        data = json.loads(Path(path).read_text())
        data.pop("increase", None)
        return cls(**data)

    def to_html(self) -> str:
        from interp.sparsity.report import topk_report

        return topk_report(self)

    def _repr_html_(self) -> str:
        from interp.sparsity.report import topk_summary

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
    layers: int | Sequence[int] | None = None,
    progress: bool = True,
) -> TopKCurve:
    """Mean next-token loss on ``tokens`` with every layer in ``layers`` top-k thresholded, per k.

    ``progress`` shows a bar over the values of k (a notebook bar in Jupyter, text in a terminal).
    """
    from tqdm.auto import tqdm

    names = resolve(model, "mlp_post", layers)
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
