"""Interventions on a model's MLP outputs that several analyses share, and how to score them.

- :func:`ablate_mlps`: replace MLP outputs by constants (zero- or mean-ablation) within a block;
- :func:`recovered_fraction`: how much of the ablation's loss gap a replacement closes.

A transcoder spliced in place of an MLP is :func:`interp.transcoders.splice`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch


@contextlib.contextmanager
def ablate_mlps(model, replacements: Mapping[int, torch.Tensor | None]) -> Iterator[None]:
    """Within the block, each layer's MLP output is replaced by a constant vector (``None`` = zeros).

    Hooks are removed when the block ends, even on error.
    """
    from interp.hooks import hook_name

    hooks = []
    for layer, value in replacements.items():
        def write(act, hook, value=value):
            return torch.zeros_like(act) if value is None else value.to(act.dtype).expand_as(act).clone()

        hooks.append((hook_name("mlp_out", layer), write))
    with model.hooks(fwd_hooks=hooks):
        yield


def recovered_fraction(ablated: float, replaced: float, clean: float) -> float:
    """``(ablated - replaced) / (ablated - clean)``: 1 when the replacement is as good as the
    original, 0 when it is as bad as the ablation (NaN when the ablation costs nothing)."""
    gap = ablated - clean
    return (ablated - replaced) / gap if abs(gap) > 1e-12 else float("nan")


__all__ = ["ablate_mlps", "recovered_fraction"]
