"""Skip transcoders: a sparse transcoder plus a linear path from input to output
(Paulo, Shabalin & Belrose 2025, "Transcoders beat sparse autoencoders for interpretability").

``y_n = f @ W_dec + b_dec + x_n @ W_skip.T`` with ``W_skip`` ``[d_out, d_in]`` starting at
zero. The linear part of the MLP goes through ``W_skip`` and costs no latents, so the
sparse part spends its budget on the nonlinear part. Two variants:

- ``skip``: ReLU + L1 (as :mod:`interp.transcoders.architectures.relu`); exports to SAELens as
  ``architecture: skip_transcoder``, whose ``W_skip`` has the same layout.
- ``skip_topk``: TopK + AuxK (as :mod:`interp.transcoders.architectures.topk`), the variant Paulo et
  al. train; SAELens has no equivalent, so it exports as ``interp_skip_topk_transcoder``,
  which :mod:`interp.transcoders.saelens` registers with SAELens.
"""

from __future__ import annotations

from dataclasses import dataclass

from interp.transcoders.registry import register
from interp.transcoders.architectures.relu import ReLUConfig, ReLUTranscoder
from interp.transcoders.architectures.topk import TopKConfig, TopKTranscoder


@dataclass
class SkipConfig(ReLUConfig):
    """A ReLU skip transcoder trained with an L1 penalty."""


@dataclass
class SkipTopKConfig(TopKConfig):
    """A TopK skip transcoder trained with the AuxK loss."""


@register("skip", SkipConfig, saelens="skip_transcoder")
class SkipTranscoder(ReLUTranscoder):
    """ReLU transcoder plus ``x_n @ W_skip.T``."""

    has_skip = True


@register("skip_topk", SkipTopKConfig, sparse_k=True)
class SkipTopKTranscoder(TopKTranscoder):
    """TopK transcoder plus ``x_n @ W_skip.T``."""

    has_skip = True
