"""The sparse decoder of a cross-layer transcoder: (latent, output layer) pairs through ``sparse_decode``.

A cross-layer transcoder (CLT) over ``n_layers`` layers has ``d_sae`` latents per layer; latent
``j = source * d_sae + f`` reads the residual stream at layer ``source`` and writes, with a
separate decoder vector, to every output layer ``m >= source``. Its decoder vectors are the
rows of one **pair table** ``W_dec`` of ``d_sae * n_layers * (n_layers + 1) / 2`` rows, laid out
output-major::

    rows for output layer m:  [pair_offset(m, d_sae), pair_offset(m, d_sae) + (m + 1) * d_sae)
    row of latent j in it:    pair_offset(m, d_sae) + j          (only for j < (m + 1) * d_sae)
    pair_offset(m, d_sae) =   d_sae * m * (m + 1) / 2

so the decoder into output layer ``m`` is one contiguous ``[(m + 1) * d_sae, d_out]`` block,
indexed by the latent id itself: a dense code over the latents of layers ``0..m`` times that
block is layer ``m``'s reconstruction (:func:`decoder_block`).

:func:`cross_layer_decode` applies the table to a sparse code ``(values, indices)`` with one
call of :func:`interp.kernels.sparse_decode`, so it runs on the same backends (torch on CPUs,
Triton on GPUs) with the same gradients: each (row, output layer) is one row of that call,
whose entries are the row's latents with their pair index for that output layer; a latent of a
later source layer than the output gets value 0 (and a harmless in-range index, spread over
the block so Triton's atomic adds of zeros do not pile up on one row). A code with ``K``
entries per row costs ``batch * n_layers * K * d_out`` multiply-adds, at most twice the
``batch * K * d_out * (n_layers + 1) / 2`` that the valid pairs need.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.kernels.backend import KernelInputError


def n_pairs(n_layers: int, d_sae: int) -> int:
    """Rows of the pair table: one per (latent, output layer at or after its source layer)."""
    return d_sae * n_layers * (n_layers + 1) // 2


def pair_offset(output: int, d_sae: int) -> int:
    """The first row of output layer ``output``'s block in the pair table."""
    return d_sae * output * (output + 1) // 2


def decoder_block(W_dec: Float[Tensor, "n_pairs d_out"], output: int, d_sae: int) -> Float[Tensor, "rows d_out"]:
    """Output layer ``output``'s decoder, ``[(output + 1) * d_sae, d_out]``: row ``j`` is latent ``j``'s vector."""
    start = pair_offset(output, d_sae)
    return W_dec[start : start + (output + 1) * d_sae]


def check_cross_layer_args(values: Tensor, indices: Tensor, W_dec: Tensor, n_layers: object) -> int:
    """Raise :class:`KernelInputError` unless the table fits ``n_layers``; return ``d_sae``."""
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise KernelInputError(f"n_layers must be a positive Python int, got {n_layers!r}")
    if not isinstance(W_dec, Tensor) or W_dec.ndim != 2:
        raise KernelInputError(f"W_dec must be the 2-D pair table (n_pairs, d_out), got {getattr(W_dec, 'shape', W_dec)}")
    per_latent = n_layers * (n_layers + 1) // 2
    if W_dec.shape[0] % per_latent:
        raise KernelInputError(
            f"W_dec has {W_dec.shape[0]} rows, not a multiple of n_layers * (n_layers + 1) / 2 = {per_latent}: "
            "it is not the pair table of a cross-layer transcoder over n_layers layers"
        )
    d_sae = W_dec.shape[0] // per_latent
    if isinstance(indices, Tensor) and indices.device.type == "cpu" and indices.numel() and not indices.is_floating_point():
        hi = int(indices.max())
        if hi >= n_layers * d_sae or int(indices.min()) < 0:
            raise KernelInputError(
                f"latent indices must lie in [0, n_layers * d_sae = {n_layers * d_sae}), got values up to {hi}"
            )
    return d_sae


def cross_layer_decode(
    values: Float[Tensor, "batch k"],
    indices: Int[Tensor, "batch k"],
    W_dec: Float[Tensor, "n_pairs d_out"],
    n_layers: int,
    *,
    backend: str = "auto",
) -> Float[Tensor, "batch n_layers d_out"]:
    """What a sparse cross-layer code writes to each output layer (no bias); see the module docstring.

    ``indices`` are latent ids ``source * d_sae + feature`` in ``[0, n_layers * d_sae)``;
    ``W_dec`` is the pair table. ``out[b, m] = sum_j values[b, j] * W_dec[pair(indices[b, j], m)]``
    over the entries whose source layer is at most ``m``. Differentiable with respect to
    ``values`` and ``W_dec``, as :func:`interp.kernels.sparse_decode` is.
    """
    from interp.kernels import sparse_decode

    d_sae = check_cross_layer_args(values, indices, W_dec, n_layers)
    batch, k = values.shape
    device = indices.device
    outputs = torch.arange(n_layers, device=device)
    latents = indices.long()[:, None, :]  # [batch, 1, k]
    valid = latents // d_sae <= outputs[None, :, None]  # [batch, n_layers, k]
    offsets = d_sae * outputs * (outputs + 1) // 2
    block_rows = ((outputs + 1) * d_sae)[None, :, None]
    rows = offsets[None, :, None] + torch.where(valid, latents, latents % block_rows)
    weights = values[:, None, :] * valid.to(values.dtype)
    out = sparse_decode(weights.reshape(batch * n_layers, k), rows.reshape(batch * n_layers, k), W_dec, backend=backend)
    return out.reshape(batch, n_layers, W_dec.shape[1])
