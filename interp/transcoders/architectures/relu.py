"""ReLU transcoder with a decoder-norm-weighted L1 penalty (Dunefsky, Chlenski & Nanda 2024).

``f = ReLU(x_n @ W_enc + b_enc)``; the loss is the reconstruction MSE plus
``l1_coefficient * sum_i f_i * ||W_dec[i]||`` (mean over rows). Weighting the L1 term by
the decoder row norms stops the optimiser from shrinking activations while growing the
decoder (the form SAELens' standard SAE and Anthropic's April 2024 update use). The L1
coefficient ramps up linearly over the first ``l1_warmup`` of training, which keeps
latents from dying early. Exports to SAELens as ``architecture: transcoder``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import ConfigError
from interp.transcoders.base import ArchConfig, LossOutput, Transcoder, fired_and_l0, ramped, reconstruction_stats
from interp.transcoders.registry import register


@dataclass
class ReLUConfig(ArchConfig):
    """A ReLU transcoder trained with an L1 penalty."""

    l1_coefficient: float = 2e-2
    """Weight of the decoder-norm-weighted L1 penalty, relative to the per-element MSE of
    the normalised target (see docs/transcoders.md for its scale; higher = sparser)."""
    l1_warmup: float = 0.05
    """Fraction of training over which the L1 coefficient ramps up linearly from zero."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.l1_coefficient < 0:
            raise ConfigError(f"l1_coefficient must be >= 0, got {self.l1_coefficient}")
        if not 0 <= self.l1_warmup <= 1:
            raise ConfigError(f"l1_warmup is a fraction of training in [0, 1], got {self.l1_warmup}")


@register("relu", ReLUConfig, saelens="transcoder")
class ReLUTranscoder(Transcoder):
    """``ReLU(x W_enc + b_enc) W_dec + b_dec``, trained with MSE + weighted L1."""

    cfg: ReLUConfig

    def activation(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        return torch.relu(pre)

    def normalised_loss(self, x_n: Tensor, y_n: Tensor, *, progress: float, dead: Tensor | None) -> LossOutput:
        acts = self.activation(self.pre_acts(x_n))
        mse, fvu = reconstruction_stats(self.decode_normalised(acts, x_n), y_n)
        l1 = (acts * self.decoder_norms()).sum(-1).mean()
        loss = mse + ramped(self.cfg.l1_coefficient, self.cfg.l1_warmup, progress) * l1
        fired, l0 = fired_and_l0(acts.detach())
        return LossOutput(loss, {"mse": mse.detach(), "l1": l1.detach()}, fired, l0, fvu)
