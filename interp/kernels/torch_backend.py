"""Plain-torch top-k kernels: run on any device, the default on CPUs.

``topk_activation`` is ``torch.topk`` followed by ReLU; torch's own backward of ``topk``
scatters the incoming gradient to the selected entries, so nothing else is needed.

``sparse_decode`` is ``torch.nn.functional.embedding_bag`` in ``sum`` mode with
``per_sample_weights``: each row of ``indices`` is one bag, each selected decoder row is
weighted by its value and the bag is summed. It never builds the dense ``batch x d_sae``
code. Its backward (``_SparseDecode``) gives ``values`` a dot product per selected row and
``W_dec`` one ``embedding_bag`` bag per latent over the rows that selected it (pairs sorted
by latent), which on a CPU is 1.4x faster than torch's own ``embedding_bag`` backward and
gives the same numbers. See docs/kernels.md for the CPU measurements that chose
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


def per_latent_sums(indices: Tensor, weights: Tensor, table: Tensor, n_latents: int) -> Tensor:
    """Row ``j`` of the result: the sum of ``weights[r, s] * table[r]`` over the pairs ``(r, s)``
    with ``indices[r, s] == j`` (zeros for a latent nobody selected); ``[n_latents, table.shape[1]]``.

    The weight gradient of a sparse encoder or decoder. The pairs are sorted by latent (a
    stable sort, so the summation order, and the result, are deterministic) and each
    latent's sum is one bag of ``embedding_bag``: ``batch * k * d`` multiply-adds in
    torch's vectorised kernel, never a dense ``batch x n_latents`` matrix.
    """
    k = indices.shape[1]
    flat = indices.reshape(-1).long()
    if flat.device.type == "cpu":
        # numpy's stable sort (one thread): torch's parallel 1-D sort of these 131k pairs (GPT-2
        # small's shape) takes 12 ms on 2 idle cores against 4 ms on one, and hundreds of ms
        # when other jobs hold a core (its threads wait for each other). Same permutation.
        order = torch.from_numpy(np.argsort(flat.numpy(), kind="stable"))
        flat_sorted = flat[order]
    else:
        flat_sorted, order = flat.sort(stable=True)
    rows = torch.div(order, k, rounding_mode="floor")
    offsets = torch.zeros(n_latents, dtype=torch.long, device=table.device)
    offsets[1:] = torch.bincount(flat_sorted, minlength=n_latents).cumsum(0)[:-1]
    return F.embedding_bag(rows, table, offsets, mode="sum", per_sample_weights=weights.reshape(-1)[order])


class _SparseDecode(torch.autograd.Function):
    """``embedding_bag`` forward; a backward whose ``W_dec`` gradient is itself an ``embedding_bag``.

    torch's own backward of ``embedding_bag`` builds ``dW_dec`` by sorting the indices and
    scattering weighted outer products one pair at a time; here the ``(row, latent)`` pairs
    are sorted by latent (stable, so deterministic) and each latent's gradient row is one bag
    over the output-gradient rows that selected it, weighted by their values: the same sum
    in torch's vectorised ``embedding_bag`` kernel. The ``values`` gradient (one dot product
    per selected row) is torch's own, from a re-run of the forward with ``W_dec`` detached.
    """

    @staticmethod
    def forward(ctx, values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
        ctx.save_for_backward(values, indices, W_dec)
        return F.embedding_bag(indices, W_dec, per_sample_weights=values, mode="sum")

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        values, indices, W_dec = ctx.saved_tensors
        grad_out = grad_out.contiguous()  # a broadcast gradient (from .sum()) is slow as an embedding table
        grad_values = grad_W = None
        if ctx.needs_input_grad[2]:
            weights = values.detach().to(grad_out.dtype)
            grad_W = per_latent_sums(indices, weights, grad_out, W_dec.shape[0]).to(W_dec.dtype)
        if ctx.needs_input_grad[0]:
            with torch.enable_grad():
                leaf = values.detach().requires_grad_()
                out = F.embedding_bag(indices, W_dec.detach(), per_sample_weights=leaf, mode="sum")
                (grad_values,) = torch.autograd.grad(out, leaf, grad_out)
        return grad_values, None, grad_W
