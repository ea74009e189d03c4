"""JumpReLU transcoders with an L0 penalty (Rajamanoharan et al. 2024, "Jumping Ahead:
Improving Reconstruction Fidelity with JumpReLU Sparse Autoencoders"; the architecture of
Gemma Scope's transcoders).

``f_i = z_i * H(z_i - theta_i)`` with ``z = x_n @ W_enc + b_enc`` and a learned positive
threshold ``theta_i > 0`` per latent (clamped positive after each step): a latent is either off or at least
``theta_i``, so small noisy activations cost nothing and large ones are not shrunk. The
loss is the reconstruction MSE plus ``l0_coefficient`` times the number of active latents
per row. ``H`` has no useful gradient, so both the JumpReLU and the L0 term get the paper's
straight-through pseudo-derivatives with respect to the threshold, using a rectangle kernel
``K`` of width ``bandwidth``::

    d f_i / d theta_i   := -(theta_i / bandwidth) * K((z_i - theta_i) / bandwidth)
    d L0_i / d theta_i  := -(1 / bandwidth) * K((z_i - theta_i) / bandwidth)

The pre-activations get the ordinary gradient of ``f`` (``H(z - theta)``) and none from
the L0 term. The coefficient ramps up linearly over the first ``l0_warmup`` of training.

Exports to SAELens as ``architecture: jumprelu_transcoder`` (``jumprelu_skip_transcoder``
with the skip path), with ``threshold`` stored as SAELens reads it, so ``sae_lens`` loads
these files and computes the same outputs (SAELens computes ``ReLU(z) * (z > threshold)``,
the same function for a positive threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interp.errors import ConfigError
from interp.transcoders.base import ArchConfig, LossOutput, Transcoder, fired_and_l0, ramped, reconstruction_stats
from interp.transcoders.registry import register


@dataclass
class JumpReLUConfig(ArchConfig):
    """A JumpReLU transcoder trained with an L0 penalty."""

    l0_coefficient: float = 2e-3
    """Weight of the L0 penalty (active latents per row), relative to the per-element MSE of
    the normalised target; higher = sparser."""
    bandwidth: float = 0.05
    """Width of the rectangle kernel of the threshold's pseudo-derivative. Rajamanoharan et
    al. use 0.001 on raw activations; here inputs are normalised and encoder columns start at
    norm 0.1, so pre-activations start with a standard deviation near 0.1 and a kernel of
    0.001 sees too few of them for the thresholds to learn in a short run."""
    initial_threshold: float = 0.05
    """Threshold of every latent at initialisation (without ``initial_density``), and the lowest
    threshold the data-driven start may give."""
    l0_warmup: float = 0.05
    """Fraction of training over which the L0 coefficient ramps up linearly from zero."""
    threshold_lr_scale: float = 10.0
    """The thresholds' learning rate as a multiple of the schedule's. Under Adam a parameter
    moves by about its learning rate per step, and the pre-activations it has to keep up
    with move by as much, so thresholds at the base rate barely separate from them in a
    short run."""
    initial_density: float | None = 1 / 16
    """Start each latent's threshold at the quantile of its pre-activations on the first
    training batch that makes about this fraction of the latents fire per row (then
    learned). None keeps ``initial_threshold`` everywhere, as the paper does; under Adam a
    threshold moves by at most about the learning rate per step, so short runs need this start."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.l0_coefficient < 0:
            raise ConfigError(f"l0_coefficient must be >= 0, got {self.l0_coefficient}")
        if self.bandwidth <= 0:
            raise ConfigError(f"bandwidth must be positive, got {self.bandwidth}")
        if self.initial_threshold <= 0:
            raise ConfigError(f"initial_threshold must be positive, got {self.initial_threshold}")
        if not 0 <= self.l0_warmup <= 1:
            raise ConfigError(f"l0_warmup is a fraction of training in [0, 1], got {self.l0_warmup}")
        if self.threshold_lr_scale <= 0:
            raise ConfigError(f"threshold_lr_scale must be positive, got {self.threshold_lr_scale}")
        if self.initial_density is not None and not 0 < self.initial_density <= 1:
            raise ConfigError(f"initial_density is a fraction of the latents in (0, 1] (or None), got {self.initial_density}")


MIN_THRESHOLD = 1e-6
"""Thresholds are clamped at this after every step."""


def _rectangle(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        on = z > threshold
        ctx.save_for_backward(z, threshold, on)
        ctx.bandwidth = bandwidth
        return z * on

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, threshold, on = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_z = grad * on
        grad_threshold = (grad * -(threshold / eps) * _rectangle((z - threshold) / eps)).sum(0)
        return grad_z, grad_threshold, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_threshold = (grad * -(1.0 / eps) * _rectangle((z - threshold) / eps)).sum(0)
        return None, grad_threshold, None


def jumprelu(pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """``pre * (pre > threshold)`` with the straight-through threshold gradient above
    (``threshold`` broadcasts over ``pre``'s first dimension, the batch)."""
    return _JumpReLU.apply(pre, threshold, bandwidth)


def step(pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """``(pre > threshold)`` as floats, with the straight-through threshold gradient of the L0 term."""
    return _Step.apply(pre, threshold, bandwidth)


@torch.no_grad()
def quantile_thresholds(pre: Tensor, density: float, floor: float) -> Tensor:
    """Each latent's threshold at which it fires on about ``density`` of the rows of ``pre``
    (``[n, *latents]``), at least ``floor``: the data-driven start of the thresholds."""
    rows = max(1, 2**24 // max(1, pre[0].numel()))  # torch.quantile takes at most 2**24 elements
    return pre[:rows].float().quantile(1.0 - density, dim=0).clamp_min(floor)


@register("jumprelu", JumpReLUConfig, saelens="jumprelu_transcoder")
class JumpReLUTranscoder(Transcoder):
    """``JumpReLU_theta(x W_enc + b_enc) W_dec + b_dec``, trained with MSE + L0."""

    cfg: JumpReLUConfig

    def __init__(self, cfg: JumpReLUConfig, seed: int | None = None) -> None:
        super().__init__(cfg, seed=seed)
        self.threshold = nn.Parameter(torch.full((cfg.d_sae,), float(cfg.initial_threshold)))

    def activation(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        return pre * (pre > self.threshold)

    @torch.no_grad()
    def set_normalisation(self, x: Float[Tensor, "n d_in"], y: Float[Tensor, "n d_out"]) -> None:
        """Record the normalisation (see the base class), then start the thresholds from data
        when ``initial_density`` is set: each latent's threshold is the ``1 - initial_density``
        quantile of its pre-activations on this batch (at least ``initial_threshold``)."""
        super().set_normalisation(x, y)
        if self.cfg.initial_density is None:
            return
        pre = self.pre_acts(self.normalise_in(x))
        self.threshold.copy_(quantile_thresholds(pre, self.cfg.initial_density, self.cfg.initial_threshold))

    def lr_scales(self) -> dict[str, float]:
        return {"threshold": self.cfg.threshold_lr_scale}

    @torch.no_grad()
    def after_step(self) -> None:
        """Keep thresholds positive (a threshold at or below zero would make JumpReLU a ReLU)."""
        self.threshold.clamp_(min=MIN_THRESHOLD)

    def normalised_loss(self, x_n: Tensor, y_n: Tensor, *, progress: float, dead: Tensor | None) -> LossOutput:
        pre = self.pre_acts(x_n)
        threshold = self.threshold
        acts = jumprelu(pre, threshold, self.cfg.bandwidth)
        mse, fvu = reconstruction_stats(self.decode_normalised(acts, x_n), y_n)
        l0_penalty = step(pre, threshold, self.cfg.bandwidth).sum(-1).mean()
        loss = mse + ramped(self.cfg.l0_coefficient, self.cfg.l0_warmup, progress) * l0_penalty
        fired, l0 = fired_and_l0(acts.detach())
        return LossOutput(loss, {"mse": mse.detach(), "l0_penalty": l0_penalty.detach()}, fired, l0, fvu)


@dataclass
class SkipJumpReLUConfig(JumpReLUConfig):
    """A JumpReLU skip transcoder trained with an L0 penalty."""


@register("skip_jumprelu", SkipJumpReLUConfig, saelens="jumprelu_skip_transcoder")
class SkipJumpReLUTranscoder(JumpReLUTranscoder):
    """JumpReLU transcoder plus ``x_n @ W_skip.T`` (see :mod:`interp.transcoders.architectures.skip`)."""

    has_skip = True
