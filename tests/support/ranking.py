"""Comparing top-k rankings that may differ only where scores tie to float precision.

Two correct top-k searches over the same scores can order (or pick) tokens differently where
two scores are equal up to rounding: GPT-2 small has rows whose 10th and 11th scores differ by
5e-7 on a scale of 1.8, and a different summation order swaps them. :func:`assert_same_topk`
accepts a ranking when, scored by the reference computation, it gives the reference's top-k
values up to a tolerance relative to the scores' scale.
"""

from __future__ import annotations

import torch
from torch import Tensor


def assert_same_topk(ids: Tensor, ref_values: Tensor, score, rtol: float = 1e-5, largest: bool = True) -> None:
    """``ids [n, k]`` is a top-k (bottom-k with ``largest=False``) of the reference scores.

    ``ref_values [n, k]`` are the reference's own top-k values, sorted; ``score(ids)`` returns
    the reference scores of the tokens ``ids`` (same shape). Each row's tokens, scored by the
    reference, must be sorted like a top-k and match ``ref_values`` within ``rtol`` times the
    largest absolute score; exact float ties may therefore swap, anything else fails.
    """
    values = score(ids)
    scale = ref_values.abs().max().clamp_min(1e-12)
    atol = rtol * float(scale)
    sign = 1.0 if largest else -1.0
    steps = sign * (values[:, :-1] - values[:, 1:])
    assert bool((steps >= -atol).all()), f"a ranking is out of order by {float(-steps.min()):.3g} (tolerance {atol:.3g})"
    gap = (values - ref_values).abs()
    worst = int(gap.max(dim=1).values.argmax())
    assert bool((gap <= atol).all()), (
        f"row {worst}: ids {ids[worst].tolist()} score {values[worst].tolist()}, "
        f"the reference's top-k is {ref_values[worst].tolist()} (tolerance {atol:.3g})"
    )
    assert all(len(set(row)) == len(row) for row in ids.tolist()), "a ranking repeats a token"


def scorer(vectors: Tensor, W: Tensor):
    """``score(ids)`` for :func:`assert_same_topk`: ``(vectors @ W)`` at ``ids``, without the full product."""

    def score(ids: Tensor) -> Tensor:
        return torch.einsum("nd,dnk->nk", vectors.double(), W.double()[:, ids])

    return score
