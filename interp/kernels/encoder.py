"""The TopK encoder as one autograd function whose backward is sparse.

``topk_encode(x, W_enc, b_enc, k)`` is ``topk_activation(x @ W_enc + b_enc, k)`` with the
same values, indices and gradients (up to float summation order), but its backward never
builds the dense ``batch x d_sae`` gradient of the pre-activations. Only ``k`` entries per
row carry gradient, so

* ``dW_enc[:, j] = sum over the rows t that selected latent j of g[t, j] * x[t]``: the
  ``(row, latent)`` pairs are sorted by latent and each latent's rows are summed with
  ``embedding_bag`` (one bag per latent, ``x`` as the table, the gradients as per-sample
  weights): ``batch * k * d_in`` multiply-adds instead of the dense ``batch * d_sae * d_in``;
* ``db_enc`` is an ``index_add_`` of the ``batch * k`` gradients;
* ``dx`` (only when ``x`` needs a gradient) is ``embedding_bag`` over the selected columns
  of ``W_enc``, the same sparse sum as :func:`interp.kernels.sparse_decode`.

The forward uses ``addmm`` (bias fused into the matmul). On a 2-core CPU this cut the
encoder's forward + backward for a 4,096 x 128 -> 1,024, k = 16 step from about 40 ms to
about 22 ms (one thread; docs/benchmarks.md). Everything is plain torch and deterministic,
so it runs on any device; sorting uses a stable sort, so gradients are bit-for-bit
reproducible. ``dW_enc`` comes out contiguous in ``W_enc``'s own ``(d_in, d_sae)`` layout
(:func:`~interp.kernels.torch_backend.per_latent_sums` with ``transposed=True``), so autograd
stores it as the gradient without a copy.

The dense pre-activations are only needed inside the forward (the backward keeps the
indices and which selected values were positive), so a training loop can hand their memory
from one step to the next: while a :class:`PreActBuffer` is active (``with buffer:``), every
``topk_encode`` writes its pre-activations into that one reused tensor. At GPT-2 small's shape
(4,096 x 24,576 floats, 400 MB) a fresh tensor each step costs about 80 ms on a CPU, spent by
the operating system handing out and zeroing 100,000 new pages;
:class:`interp.transcoders.Trainer` keeps one buffer for all its transcoders.

With ``aux_mask`` and ``aux_k`` it also selects the AuxK latents (Gao et al.: the top ``aux_k``
of the masked-in, i.e. dead, latents) from the same pre-activations; their gradients join the
main selection's pairs in the same sparse backward, so a step with dead latents never forms a
dense gradient either (2.67 -> 1.53 s a step at GPT-2 small's shape, benchmarks/auxk_step.py).
On a CPU the main top-k goes through block maxima (:func:`_topk_rows`).
"""

from __future__ import annotations

from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor

from interp.kernels.backend import KernelInputError, check_topk_args
from interp.kernels.torch_backend import per_latent_sums


class PreActBuffer:
    """One pre-activation tensor reused by every :func:`topk_encode` called while it is active.

    ::

        buffer = PreActBuffer()
        for batch in batches:
            with buffer:
                loss = transcoder.loss(*batch)
            loss.backward()
        buffer.release()   # or drop the object

    The tensor grows to the largest ``batch x d_sae`` seen (per dtype and device) and is
    kept until :meth:`release`. Safe because the forward reads the pre-activations only
    before it returns; not for use from several threads at once.
    """

    def __init__(self) -> None:
        self._tensor: Tensor | None = None
        self._tokens: list = []

    def take(self, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A ``rows x cols`` view of the reused tensor (reallocated when too small or of another kind)."""
        t = self._tensor
        if t is None or t.dtype != dtype or t.device != device or t.numel() < rows * cols:
            self._tensor = None  # free the old one before allocating the new one
            t = self._tensor = torch.empty(rows * cols, dtype=dtype, device=device)
        return t[: rows * cols].view(rows, cols)

    def release(self) -> None:
        """Free the tensor (the next ``take`` allocates again)."""
        self._tensor = None

    def __enter__(self) -> PreActBuffer:  # noqa: PYI034 - Self needs Python 3.11
        self._tokens.append(_ACTIVE.set(self))
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self._tokens.pop())


_ACTIVE: ContextVar[PreActBuffer | None] = ContextVar("interp_preact_buffer", default=None)


#: latents per block of the blocked top-k (:func:`_topk_rows`)
_BLOCK = 32


def _topk_rows(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``pre.topk(k, dim=1, sorted=True)``, on a CPU through block maxima when the rows are long.

    Each row is cut into blocks of :data:`_BLOCK` latents; every one of the row's ``k`` largest
    values lies in one of the ``k`` blocks with the largest maxima (any value above the
    ``k``-th largest block maximum does, and those ``k`` blocks hold ``k`` values at least that
    large), so the top-k of those blocks' ``k * _BLOCK`` entries is the row's. The same values,
    in the same order; only where values tie at the ``k``-th place may another of the tied
    latents be picked than torch.topk picks (deterministically: candidates keep index order).
    At GPT-2 small's shape (4,096 x 24,576, k 32) 69 ms against torch.topk's 111 ms on 2 cores
    (one pass of ``amax`` over the rows, then top-k over 768 maxima and over 1,024 candidates).
    """
    rows, n = pre.shape
    n_blocks = n // _BLOCK
    if pre.device.type != "cpu" or n % _BLOCK or n_blocks < 8 * k or not pre.is_contiguous():
        return pre.topk(k, dim=1, sorted=True)
    blocks = pre.view(rows, n_blocks, _BLOCK)
    chosen = blocks.amax(-1).topk(k, dim=1, sorted=False).indices.sort(dim=1).values
    flat = (chosen + torch.arange(rows, device=pre.device).unsqueeze(1) * n_blocks).reshape(-1)
    candidates = blocks.reshape(rows * n_blocks, _BLOCK).index_select(0, flat).view(rows, k * _BLOCK)
    top, where = candidates.topk(k, dim=1, sorted=True)
    indices = chosen.gather(1, torch.div(where, _BLOCK, rounding_mode="floor")) * _BLOCK + where % _BLOCK
    return top, indices


class _TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, aux_mask: Tensor | None, aux_k: int):
        buffer = _ACTIVE.get()
        if buffer is None:
            pre = torch.addmm(b_enc, x, W_enc)
        else:
            out = buffer.take(x.shape[0], W_enc.shape[1], torch.result_type(x, W_enc), x.device)
            pre = torch.addmm(b_enc, x, W_enc, out=out)
        top, indices = _topk_rows(pre, k)
        selected, parts = [indices], [top]
        if aux_mask is not None:  # the AuxK selection: the top aux_k among the masked-in latents
            aux_top, aux_indices = pre.masked_fill_(~aux_mask, float("-inf")).topk(aux_k, dim=1, sorted=True)
            selected.append(aux_indices)
            parts.append(aux_top)
        every = torch.cat(selected, 1) if aux_mask is not None else indices
        ctx.save_for_backward(x, W_enc, every, torch.cat(parts, 1) > 0)
        ctx.mark_non_differentiable(*selected)
        values = top.relu()
        if aux_mask is None:
            return values, indices
        return values, indices, aux_top.relu(), aux_indices

    @staticmethod
    def backward(ctx, grad_values: Tensor, _grad_indices: Tensor | None, *aux_grads):
        x, W_enc, indices, positive = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        if aux_grads:  # (grad of the aux values, None for their indices): one set of (row, latent) pairs
            grad_aux = aux_grads[0] if aux_grads[0] is not None else grad_values.new_zeros(positive.shape[0], positive.shape[1] - grad_values.shape[1])
            grad_values = torch.cat([grad_values, grad_aux], 1)
        g = (grad_values * positive).reshape(-1)
        flat = indices.reshape(-1)
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_W = per_latent_sums(indices, g, x, d_sae, transposed=True)
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(d_sae, dtype=g.dtype, device=g.device).index_add_(0, flat, g)
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(indices, W_enc.t().contiguous(), mode="sum",
                                     per_sample_weights=g.view_as(grad_values))
        return grad_x, grad_W, grad_b, None, None, None


def topk_encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, *, aux_mask: Tensor | None = None, aux_k: int | None = None
) -> tuple[Tensor, ...]:
    """``topk_activation(x @ W_enc + b_enc, k)`` with a sparse backward (see the module docstring).

    ``x`` is ``(batch, d_in)``, ``W_enc`` ``(d_in, d_sae)``, ``b_enc`` ``(d_sae,)`` (checked
    here, with a message that says which shape is off). Returns ``(values, indices)``, each ``batch x k``, values through ReLU and sorted
    largest first; gradients flow to ``x``, ``W_enc`` and ``b_enc`` through the selected,
    positive entries only.

    With ``aux_mask`` (bool, ``(d_sae,)``: the latents the AuxK loss may use, e.g. the dead
    ones) and ``aux_k``, also returns the AuxK selection ``(aux_values, aux_indices)``, each
    ``batch x aux_k``: ``topk_activation`` of the pre-activations with every other latent at
    ``-inf``, from the same matmul and with the same sparse backward (their gradients add to
    the main selection's). ``aux_k`` must not exceed the number of latents in the mask.
    """
    if x.ndim != 2 or W_enc.ndim != 2 or b_enc.ndim != 1:
        raise KernelInputError(
            f"topk_encode needs x (batch, d_in), W_enc (d_in, d_sae) and b_enc (d_sae,), got shapes "
            f"{tuple(x.shape)}, {tuple(W_enc.shape)} and {tuple(b_enc.shape)}"
        )
    if x.shape[1] != W_enc.shape[0] or W_enc.shape[1] != b_enc.shape[0]:
        raise KernelInputError(
            f"shapes do not fit: x {tuple(x.shape)} @ W_enc {tuple(W_enc.shape)} + b_enc {tuple(b_enc.shape)}; "
            "W_enc is (d_in, d_sae): did you pass its transpose?"
        )
    check_topk_args(x.new_empty(0, W_enc.shape[1]), k)
    if aux_mask is None:
        return _TopKEncode.apply(x, W_enc, b_enc, k, None, 0)
    if aux_mask.shape != (W_enc.shape[1],) or aux_mask.dtype != torch.bool:
        raise KernelInputError(f"aux_mask must be a bool tensor of shape (d_sae,) = ({W_enc.shape[1]},), got "
                               f"{aux_mask.dtype} {tuple(aux_mask.shape)}")
    available = int(aux_mask.sum())
    if isinstance(aux_k, bool) or not isinstance(aux_k, int) or not 1 <= aux_k <= available:
        raise KernelInputError(f"aux_k must be an int between 1 and the {available} latents in aux_mask, got {aux_k!r}")
    return _TopKEncode.apply(x, W_enc, b_enc, k, aux_mask.to(x.device), aux_k)
