"""Plain-torch top-k kernels: run on any device, the default on CPUs.

``topk_activation`` is ``torch.topk`` followed by ReLU; torch's own backward of ``topk``
scatters the incoming gradient to the selected entries, so nothing else is needed.

``sparse_decode`` is ``torch.nn.functional.embedding_bag`` in ``sum`` mode with
``per_sample_weights``: each row of ``indices`` is one bag, each selected decoder row is
weighted by its value and the bag is summed. It never builds the dense ``batch x d_sae``
code. Its backward (``_SparseDecode``) gives ``values`` a dot product per selected row and
``W_dec`` one ``embedding_bag`` bag per latent over the rows that selected it (pairs sorted
by latent), which on a CPU is 1.4x faster than torch's own ``embedding_bag`` backward at the
reference model's shape and about 1.1x at GPT-2 small's (54 vs 59 ms), with the same numbers. See docs/kernels.md for the CPU measurements that chose
``embedding_bag`` over ``index_select`` + ``bmm`` and over a dense matmul.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interp.kernels.backend import KernelBackend


class TorchBackend(KernelBackend):
    """Reference implementation in plain torch; works on every device."""

    name = "torch"

    def available(self, device: torch.device) -> str | None:
        return None

    def topk_activation(self, pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
        values, indices = pre.topk(k, dim=1, sorted=True)
        return values.relu(), indices

    def sparse_decode(self, values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
        return _SparseDecode.apply(values, indices, W_dec)


#: latents per block when :func:`per_latent_sums` writes the transposed layout on a CPU: a
#: block of sums (1,024 x 768 floats at GPT-2 small's shape) is transposed while it is in cache
_LATENT_BLOCK = 1024


def per_latent_sums(indices: Tensor, weights: Tensor, table: Tensor, n_latents: int, *, transposed: bool = False) -> Tensor:
    """Row ``j`` of the result: the sum of ``weights[r, s] * table[r]`` over the pairs ``(r, s)``
    with ``indices[r, s] == j`` (zeros for a latent nobody selected); ``[n_latents, table.shape[1]]``,
    or its transpose ``[table.shape[1], n_latents]`` (contiguous) with ``transposed=True``.

    The weight gradient of a sparse encoder or decoder. The pairs are sorted by latent (a
    stable sort, so the summation order, and the result, are deterministic) and each
    latent's sum is one bag of ``embedding_bag``: ``batch * k * d`` multiply-adds in
    torch's vectorised kernel, never a dense ``batch x n_latents`` matrix.

    ``transposed=True`` is the layout of an encoder weight ``(d_in, d_sae)``. On a CPU the sums
    are made :data:`_LATENT_BLOCK` latents at a time and each block is transposed into place
    while it is still in cache: at GPT-2 small's shape this takes 77 ms where summing all the
    latents and then transposing the 75 MB result takes 116 ms (2 cores), and the gradient
    comes out in the parameter's own layout, so autograd keeps it without another copy.
    Same numbers either way (each latent's bag is the same).
    """
    k = indices.shape[1]
    flat = indices.reshape(-1).long()
    if flat.device.type == "cpu":
        # numpy's stable sort (one thread): torch's parallel 1-D sort of these 131k pairs (GPT-2
        # small's shape) takes 12 ms on 2 idle cores against 4 ms on one, and hundreds of ms
        # when other jobs hold a core (its threads wait for each other). Keys that fit 16 bits
        # (up to 65,536 latents) are radix-sorted by numpy: 1.1 ms where int64 keys take 8.9.
        keys = flat.numpy()
        if n_latents <= 1 << 16:
            keys = keys.astype(np.uint16)
        order = torch.from_numpy(np.argsort(keys, kind="stable"))
        flat_sorted = flat[order]
    else:
        flat_sorted, order = flat.sort(stable=True)
    rows = torch.div(order, k, rounding_mode="floor")
    per_sample = weights.reshape(-1)[order]
    ends = torch.bincount(flat_sorted, minlength=n_latents).cumsum(0)
    offsets = torch.zeros(n_latents, dtype=torch.long, device=table.device)
    offsets[1:] = ends[:-1]
    if not transposed:
        return F.embedding_bag(rows, table, offsets, mode="sum", per_sample_weights=per_sample)
    if table.device.type != "cpu":
        return F.embedding_bag(rows, table, offsets, mode="sum", per_sample_weights=per_sample).t().contiguous()
    out = torch.empty(table.shape[1], n_latents, dtype=table.dtype, device=table.device)
    bounds = offsets.tolist() + [int(ends[-1])]
    for j0 in range(0, n_latents, _LATENT_BLOCK):
        j1 = min(n_latents, j0 + _LATENT_BLOCK)
        first, last = bounds[j0], bounds[j1]
        block = F.embedding_bag(rows[first:last], table, offsets[j0:j1] - first, mode="sum",
                                per_sample_weights=per_sample[first:last])
        out[:, j0:j1].copy_(block.t())
    return out


class _SparseDecode(torch.autograd.Function):
    """``embedding_bag`` forward; a backward whose ``W_dec`` gradient is itself an ``embedding_bag``.

    torch's own backward of ``embedding_bag`` builds ``dW_dec`` by sorting the indices and
    scattering weighted outer products one pair at a time; here the ``(row, latent)`` pairs
    are sorted by latent (stable, so deterministic) and each latent's gradient row is one bag
    over the output-gradient rows that selected it, weighted by their values: the same sum
    in torch's vectorised ``embedding_bag`` kernel. The ``values`` gradient (one dot product
    per selected row) is torch's own kernel for it (``_embedding_bag_per_sample_weights_backward``),
    called with the bag layout the forward recorded, so the forward is not run a second time.
    """

    @staticmethod
    def forward(ctx, values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
        batch, k = indices.shape
        flat = indices.reshape(-1)
        offsets = torch.arange(0, batch * k, k, dtype=flat.dtype, device=flat.device)
        out, offset2bag, _, _ = torch.ops.aten._embedding_bag(
            W_dec, flat, offsets, False, 0, False, values.reshape(-1), False, -1
        )
        ctx.save_for_backward(values, indices, W_dec, offsets, offset2bag)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        values, indices, W_dec, offsets, offset2bag = ctx.saved_tensors
        grad_out = grad_out.contiguous()  # a broadcast gradient (from .sum()) is slow as an embedding table
        grad_values = grad_W = None
        if ctx.needs_input_grad[2]:
            weights = values.detach().to(grad_out.dtype)
            grad_W = per_latent_sums(indices, weights, grad_out, W_dec.shape[0]).to(W_dec.dtype)
        if ctx.needs_input_grad[0]:
            grad_values = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                grad_out.to(W_dec.dtype), W_dec, indices.reshape(-1), offsets, offset2bag, 0, -1
            ).view_as(values)
        return grad_values, None, grad_W
