"""Plain-torch top-k kernels: run on any device, the default on CPUs.

``topk_activation`` is ``torch.topk`` followed by ReLU; torch's own backward of ``topk``
scatters the incoming gradient to the selected entries, so nothing else is needed.

``sparse_decode`` is ``torch.nn.functional.embedding_bag`` in ``sum`` mode with
``per_sample_weights``: each row of ``indices`` is one bag, each selected decoder row is
weighted by its value and the bag is summed. It never builds the dense ``batch x d_sae``
code, and its backward gives both ``values`` (a dot product per selected row) and ``W_dec``
(a scatter-add of outer products). See docs/kernels.md for the CPU measurements that chose
it over ``index_select`` + ``bmm`` and over a dense matmul.
"""

from __future__ import annotations

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
        return F.embedding_bag(indices, W_dec, per_sample_weights=values, mode="sum")
