"""Triton top-k kernels for GPUs: the sparse decoder forward and backward, and the TopK backward.

``sparse_decode`` runs three kernels, none of which builds the dense ``batch x d_sae`` code:

* forward, one program per (row, block of ``d_out``): gather the ``k`` selected rows of
  ``W_dec``, weight them by their values and sum, accumulating in float32 (float64 for float64 inputs);
* backward to ``values``, one program per (row, block of ``k``): the dot product of each
  selected decoder row with the row's output gradient, looping over ``d_out``;
* backward to ``W_dec``, one program per (row, block of ``d_out``): the outer product
  ``values[b]^T grad_out[b]`` scatter-added into the selected rows with float32 atomics (float64 for float64). The
  order of the atomic additions is not fixed, so this gradient is not bitwise reproducible
  from run to run; under ``torch.use_deterministic_algorithms(True)`` it is computed with
  torch's deterministic ``index_put_(accumulate=True)`` instead.

``topk_activation`` selects with ``torch.topk`` (a tuned CUDA kernel; a top-k of a 24,576-wide
row does not fit one Triton program's registers) and fuses ReLU with the backward scatter
into one Triton kernel: ``grad_pre[b, idx] = grad_values * (values > 0)``, zeros elsewhere.

On CPU tensors the kernels run only under Triton's interpreter (``TRITON_INTERPRET=1`` set
before triton is imported); that is how the tests check them against a dense reference.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from interp.kernels.backend import KernelBackend


@triton.jit
def _decode_fwd_kernel(
    out_ptr, idx_ptr, val_ptr, w_ptr, K, D,
    BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    acc = tl.zeros((BLOCK_D,), dtype=ACC)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        idx = tl.load(idx_ptr + row * K + offs_k, mask=mask_k, other=0).to(tl.int64)
        val = tl.load(val_ptr + row * K + offs_k, mask=mask_k, other=0.0).to(ACC)
        w = tl.load(w_ptr + idx[:, None] * D + offs_d[None, :], mask=mask_k[:, None] & mask_d[None, :], other=0.0)
        acc += tl.sum(val[:, None] * w.to(ACC), axis=0)
    tl.store(out_ptr + row * D + offs_d, acc.to(out_ptr.dtype.element_ty), mask=mask_d)


@triton.jit
def _decode_bwd_values_kernel(
    gval_ptr, idx_ptr, w_ptr, gout_ptr, K, D,
    BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    idx = tl.load(idx_ptr + row * K + offs_k, mask=mask_k, other=0).to(tl.int64)
    acc = tl.zeros((BLOCK_K,), dtype=ACC)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        g = tl.load(gout_ptr + row * D + offs_d, mask=mask_d, other=0.0).to(ACC)
        w = tl.load(w_ptr + idx[:, None] * D + offs_d[None, :], mask=mask_k[:, None] & mask_d[None, :], other=0.0)
        acc += tl.sum(w.to(ACC) * g[None, :], axis=1)
    tl.store(gval_ptr + row * K + offs_k, acc.to(gval_ptr.dtype.element_ty), mask=mask_k)


@triton.jit
def _decode_bwd_weight_kernel(
    gw_ptr, idx_ptr, val_ptr, gout_ptr, K, D,
    BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    g = tl.load(gout_ptr + row * D + offs_d, mask=mask_d, other=0.0).to(ACC)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        idx = tl.load(idx_ptr + row * K + offs_k, mask=mask_k, other=0).to(tl.int64)
        val = tl.load(val_ptr + row * K + offs_k, mask=mask_k, other=0.0).to(ACC)
        mask = mask_k[:, None] & mask_d[None, :]
        tl.atomic_add(gw_ptr + idx[:, None] * D + offs_d[None, :], val[:, None] * g[None, :], mask=mask)


@triton.jit
def _topk_bwd_kernel(
    gpre_ptr, idx_ptr, val_ptr, gval_ptr, K, N,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    idx = tl.load(idx_ptr + row * K + offs_k, mask=mask_k, other=0).to(tl.int64)
    val = tl.load(val_ptr + row * K + offs_k, mask=mask_k, other=0.0)
    gval = tl.load(gval_ptr + row * K + offs_k, mask=mask_k, other=0.0)
    gpre = tl.where(val > 0, gval, tl.zeros_like(gval))
    tl.store(gpre_ptr + row * N + idx, gpre.to(gpre_ptr.dtype.element_ty), mask=mask_k)


def _acc(dtype: torch.dtype):
    """Accumulator type: float64 for float64 inputs, float32 for everything narrower."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def _blocks(k: int, d: int) -> tuple[int, int]:
    """Tile sizes: 16 to 32 selected rows by 16 to 128 output columns per step (masked at the edges)."""
    return min(32, max(16, triton.next_power_of_2(k))), min(128, max(16, triton.next_power_of_2(d)))


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
        values, indices, W_dec = values.contiguous(), indices.contiguous(), W_dec.contiguous()
        (B, K), D = values.shape, W_dec.shape[1]
        out = torch.empty(B, D, device=values.device, dtype=values.dtype)
        BLOCK_K, BLOCK_D = _blocks(K, D)
        if B:
            _decode_fwd_kernel[(B, triton.cdiv(D, BLOCK_D))](
                out, indices, values, W_dec, K, D, BLOCK_K, BLOCK_D, _acc(values.dtype)
            )
        ctx.save_for_backward(values, indices, W_dec)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        values, indices, W_dec = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        (B, K), (N, D) = values.shape, W_dec.shape
        BLOCK_K, BLOCK_D = _blocks(K, D)
        grad_values = grad_W = None
        if ctx.needs_input_grad[0]:
            grad_values = torch.empty_like(values)
            if B:
                _decode_bwd_values_kernel[(B, triton.cdiv(K, BLOCK_K))](
                    grad_values, indices, W_dec, grad_out, K, D, BLOCK_K, BLOCK_D, _acc(values.dtype)
                )
        if ctx.needs_input_grad[2]:
            grad_W = torch.zeros(N, D, device=W_dec.device, dtype=torch.promote_types(W_dec.dtype, torch.float32))
            if torch.are_deterministic_algorithms_enabled():
                outer = values.to(grad_W.dtype)[:, :, None] * grad_out.to(grad_W.dtype)[:, None, :]
                grad_W.index_put_((indices.reshape(-1).long(),), outer.reshape(-1, D), accumulate=True)
            elif B:
                _decode_bwd_weight_kernel[(B, triton.cdiv(D, BLOCK_D))](
                    grad_W, indices, values, grad_out, K, D, BLOCK_K, BLOCK_D, _acc(values.dtype)
                )
            grad_W = grad_W.to(W_dec.dtype)
        return grad_values, None, grad_W


class _TopKReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
        values, indices = pre.topk(k, dim=1, sorted=True)
        values = values.relu_()
        ctx.save_for_backward(values, indices)
        ctx.n = pre.shape[1]
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad_values: Tensor, _grad_indices: Tensor | None):
        values, indices = ctx.saved_tensors
        (B, K), N = values.shape, ctx.n
        grad_pre = torch.zeros(B, N, device=values.device, dtype=grad_values.dtype)
        BLOCK_K = min(128, max(16, triton.next_power_of_2(K)))
        if B:
            _topk_bwd_kernel[(B, triton.cdiv(K, BLOCK_K))](
                grad_pre, indices.contiguous(), values, grad_values.contiguous(), K, N, BLOCK_K
            )
        return grad_pre, None


class TritonBackend(KernelBackend):
    """Triton kernels; CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``."""

    name = "triton"

    def available(self, device: torch.device) -> str | None:
        if device.type == "cuda":
            return None
        if device.type == "cpu" and type(_decode_fwd_kernel).__name__ == "InterpretedFunction":
            return None
        return (
            "Triton kernels need a CUDA device, or CPU tensors with TRITON_INTERPRET=1 set before triton "
            "is imported (the interpreter, for testing only); use backend='torch' or 'auto'"
        )

    def topk_activation(self, pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
        return _TopKReLU.apply(pre, k)

    def sparse_decode(self, values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
        return _SparseDecode.apply(values, indices, W_dec)
