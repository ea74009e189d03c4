"""Top-k kernels for TopK sparse autoencoders and transcoders: one interface, two backends.

::

    from interp.kernels import topk_activation, sparse_decode

    values, indices = topk_activation(x @ W_enc + b_enc, k=16)    # (batch, k) each
    out = sparse_decode(values, indices, W_dec) + b_dec            # (batch, d_out)
    per_layer = cross_layer_decode(values, indices, W_pairs, n_layers)  # (batch, n_layers, d_out)

    values, indices = topk_encode(x, W_enc, b_enc, k=16)            # same, sparse backward
    buffer = PreActBuffer()                                          # training loops: one pre-activation
    with buffer:                                                     # tensor reused by every call
        values, indices = topk_encode(x, W_enc, b_enc, k=16)

``backend="auto"`` (the default) uses the Triton kernels when the tensors are on a CUDA
device and ``triton`` imports, and plain torch otherwise; ``backend="torch"`` or
``"triton"`` forces one (``"triton"`` on CPU tensors needs ``TRITON_INTERPRET=1`` set
before triton is imported, which is how the tests run it). The contract every backend
meets is written down in :mod:`interp.kernels.backend`; docs/kernels.md has the numbers.
:func:`topk_encode` (:mod:`interp.kernels.encoder`) fuses the encoder matmul with the top-k
and gives it a sparse backward; it is plain torch on every device. :func:`cross_layer_decode`
(:mod:`interp.kernels.cross_layer`) decodes a cross-layer transcoder's sparse code into every
output layer through ``sparse_decode``, so on the same backends.
"""

from __future__ import annotations

import importlib
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.kernels.backend import KernelBackend, KernelInputError, check_decode_args, check_topk_args
from interp.kernels.cross_layer import cross_layer_decode, decoder_block, n_pairs, pair_offset
from interp.kernels.encoder import PreActBuffer, topk_encode
from interp.kernels.torch_backend import TorchBackend

BackendName = Literal["auto", "torch", "triton"]

#: backend name -> (module, class); instantiated lazily so importing interp.kernels never imports triton
_REGISTRY: dict[str, tuple[str, str]] = {
    "torch": ("interp.kernels.torch_backend", "TorchBackend"),
    "triton": ("interp.kernels.triton_backend", "TritonBackend"),
}
_INSTANCES: dict[str, KernelBackend] = {"torch": TorchBackend()}


def backend_names() -> tuple[str, ...]:
    """Names accepted by ``backend=`` besides ``"auto"``."""
    return tuple(_REGISTRY)


def triton_importable() -> bool:
    """Whether ``import triton`` works in this environment."""
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def _instance(name: str) -> KernelBackend:
    if name not in _INSTANCES:
        module_name, cls = _REGISTRY[name]
        _INSTANCES[name] = getattr(importlib.import_module(module_name), cls)()
    return _INSTANCES[name]


def get_backend(name: str = "auto", device: torch.device | str = "cpu") -> KernelBackend:
    """The backend that ``backend=name`` selects for tensors on ``device``.

    ``"auto"`` is Triton on CUDA devices when triton imports, torch otherwise. Naming a
    backend that cannot run on ``device`` raises :class:`KernelInputError` saying why.
    """
    device = torch.device(device)
    if name == "auto":
        name = "triton" if device.type == "cuda" and triton_importable() else "torch"
    if name not in _REGISTRY:
        raise KernelInputError(f"unknown kernel backend {name!r}; choose one of auto, {', '.join(_REGISTRY)}")
    if name == "triton" and not triton_importable():
        raise KernelInputError(
            "backend 'triton' needs the triton package: pip install 'interp-toolkit[triton]' "
            "(or use backend='torch')"
        )
    backend = _instance(name)
    why = backend.available(device)
    if why is not None:
        raise KernelInputError(f"backend {name!r} cannot run on {device}: {why}")
    return backend


def topk_activation(
    pre: Float[Tensor, "batch d_sae"], k: int, *, backend: BackendName = "auto"
) -> tuple[Float[Tensor, "batch k"], Int[Tensor, "batch k"]]:
    """Values and indices of the ``k`` largest pre-activations of each row, values through ReLU.

    Values are sorted largest first. Gradient flows only to the ``k`` selected entries of
    ``pre`` (and through the ReLU only to the positive ones).
    """
    check_topk_args(pre, k)
    return get_backend(backend, pre.device).topk_activation(pre, k)


def sparse_decode(
    values: Float[Tensor, "batch k"],
    indices: Int[Tensor, "batch k"],
    W_dec: Float[Tensor, "d_sae d_out"],
    *,
    backend: BackendName = "auto",
) -> Float[Tensor, "batch d_out"]:
    """``sum_j values[:, j] * W_dec[indices[:, j]]``; autograd to ``values`` and ``W_dec`` (not indices)."""
    check_decode_args(values, indices, W_dec)
    return get_backend(backend, values.device).sparse_decode(values, indices, W_dec)


__all__ = [
    "BackendName",
    "KernelBackend",
    "KernelInputError",
    "PreActBuffer",
    "backend_names",
    "cross_layer_decode",
    "decoder_block",
    "get_backend",
    "n_pairs",
    "pair_offset",
    "sparse_decode",
    "topk_activation",
    "topk_encode",
    "triton_importable",
]
