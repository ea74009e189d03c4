"""The contract every top-k kernel backend meets, and the checks shared by all of them.

A backend implements two operations of a TopK sparse autoencoder / transcoder:

* ``topk_activation(pre, k)``: the ``k`` largest pre-activations of every row, passed
  through ReLU, with their latent indices. Sorted by value, largest first (ties broken as
  ``torch.topk`` breaks them). Gradient flows back only to the ``k`` selected entries of
  ``pre`` (and, through the ReLU, only to those that are positive).
* ``sparse_decode(values, indices, W_dec)``: ``sum_j values[:, j] * W_dec[indices[:, j]]``,
  the decoder applied to a sparse code without materialising the dense ``batch x d_sae``
  latent matrix. Differentiable with respect to ``values`` and ``W_dec``; ``indices`` are
  integers and carry no gradient.

Inputs are checked here, once, before any backend runs, so every backend rejects the same
bad input with the same message (:class:`KernelInputError`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from interp.errors import KernelInputError


class KernelBackend(ABC):
    """One implementation of the top-k kernels (see the module docstring for the contract).

    Subclasses get already-validated arguments: 2-D tensors with matching sizes, integer
    indices, ``1 <= k <= d_sae``, everything on one device.
    """

    #: registry name, as accepted by ``backend=``
    name: str

    @abstractmethod
    def available(self, device: torch.device) -> str | None:
        """None when this backend can run on ``device``; otherwise why it cannot."""

    @abstractmethod
    def topk_activation(self, pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(values, indices), each ``batch x k``; values are ReLU'd and sorted descending."""

    @abstractmethod
    def sparse_decode(self, values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
        """``batch x d_out``: the sum of the selected decoder rows weighted by ``values``."""


def check_topk_args(pre: Tensor, k: object) -> None:
    """Raise :class:`KernelInputError` unless ``pre`` is a 2-D float tensor and 1 <= k <= d_sae."""
    if not isinstance(pre, Tensor):
        raise KernelInputError(f"pre must be a torch.Tensor, got {type(pre).__name__}")
    if pre.ndim != 2:
        raise KernelInputError(
            f"pre must be 2-D (batch, d_sae), got shape {tuple(pre.shape)}; "
            "flatten leading dimensions first, e.g. pre.reshape(-1, pre.shape[-1])"
        )
    if not pre.is_floating_point():
        raise KernelInputError(f"pre must be a floating-point tensor, got dtype {pre.dtype}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise KernelInputError(f"k must be a Python int, got {type(k).__name__} {k!r}")
    d_sae = pre.shape[1]
    if not 1 <= k <= d_sae:
        raise KernelInputError(f"k must satisfy 1 <= k <= d_sae = {d_sae}, got k = {k}")
    # NaN and +inf would be selected as the largest values (-inf is how callers mask latents out);
    # checked where it costs no device synchronisation
    if pre.device.type == "cpu" and pre.numel() and not bool((pre < float("inf")).all()):
        bad = ~(pre < float("inf"))
        row = int(bad.any(1).nonzero()[0])
        raise KernelInputError(
            f"pre holds {int(bad.sum())} NaN or +inf values (first in row {row}); top-k would select them: "
            "find where the pre-activations stop being finite (the inputs or the encoder weights)"
        )


def check_decode_args(values: Tensor, indices: Tensor, W_dec: Tensor) -> None:
    """Raise :class:`KernelInputError` unless the three arguments of ``sparse_decode`` fit together."""
    for name, t in (("values", values), ("indices", indices), ("W_dec", W_dec)):
        if not isinstance(t, Tensor):
            raise KernelInputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 2:
            want = "(d_sae, d_out)" if name == "W_dec" else "(batch, k)"
            raise KernelInputError(f"{name} must be 2-D {want}, got shape {tuple(t.shape)}")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise KernelInputError(
            f"indices must be an integer tensor (int64 or int32), got dtype {indices.dtype}; "
            "pass the indices returned by topk_activation, not the values"
        )
    if indices.dtype not in (torch.int64, torch.int32):
        raise KernelInputError(f"indices must be int64 or int32, got {indices.dtype}; use indices.long()")
    if not values.is_floating_point():
        raise KernelInputError(f"values must be a floating-point tensor, got dtype {values.dtype}")
    if not W_dec.is_floating_point():
        raise KernelInputError(f"W_dec must be a floating-point tensor, got dtype {W_dec.dtype}")
    if values.dtype != W_dec.dtype:
        raise KernelInputError(
            f"values ({values.dtype}) and W_dec ({W_dec.dtype}) must have the same dtype; "
            "cast one of them, e.g. values.to(W_dec.dtype)"
        )
    if values.shape != indices.shape:
        raise KernelInputError(
            f"values and indices must have the same shape (batch, k), got {tuple(values.shape)} "
            f"and {tuple(indices.shape)}"
        )
    if values.device != indices.device or values.device != W_dec.device:
        raise KernelInputError(
            f"values, indices and W_dec must be on one device, got {values.device}, "
            f"{indices.device} and {W_dec.device}"
        )
    d_sae, k = W_dec.shape[0], values.shape[1]
    if k > d_sae:
        raise KernelInputError(f"k = {k} selected latents per row, but W_dec has only d_sae = {d_sae} rows")
    # Range check only where it is free of a device synchronisation.
    if indices.device.type == "cpu" and indices.numel():
        lo, hi = (int(t) for t in torch.aminmax(indices))
        if lo < 0 or hi >= d_sae:
            raise KernelInputError(
                f"indices must lie in [0, d_sae = {d_sae}), got values from {lo} to {hi}; "
                "W_dec is (d_sae, d_out): did you pass its transpose?"
            )
