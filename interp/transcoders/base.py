"""What every transcoder architecture shares: weights, normalisation, encode/decode, loss API.

A transcoder reads the MLP's input ``x`` (``blocks.L.ln2.hook_normalized``) and predicts
the MLP's output ``y`` (``blocks.L.hook_mlp_out``) through a wide, sparsely active
hidden layer::

    x_n = (x - in_mean) / in_scale                     # normalisation recorded from data
    f   = act(x_n @ W_enc + b_enc)                     # [batch, d_sae], sparse
    y_n = f @ W_dec + b_dec (+ x_n @ W_skip.T)         # skip transcoders only
    y   = y_n * out_scale + out_mean

Training happens in the normalised space (targets ``(y - out_mean) / out_scale`` have
mean zero and mean squared norm ``d_out``), so one set of hyperparameters serves models
of any activation scale. :meth:`Transcoder.fold_normalisation` folds the four
normalisation buffers into the weights; the folded transcoder computes the same function
with identity normalisation and is what :mod:`interp.transcoders.formats` saves.

An architecture subclasses :class:`Transcoder` (its ``activation`` and ``normalised_loss``) and
:class:`ArchConfig`, and registers the pair with :func:`interp.transcoders.registry.register`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from interp.errors import ConfigError


@dataclass
class ArchConfig:
    """Shape and hyperparameters of one transcoder; architectures add their own fields."""

    d_in: int
    """Width of the input (the MLP input, d_model)."""
    d_out: int
    """Width of the output (the MLP output, d_model)."""
    d_sae: int
    """Number of latents (expansion factor times d_in)."""

    def __post_init__(self) -> None:
        for name in ("d_in", "d_out", "d_sae"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class LossOutput:
    """One training step's loss for one transcoder, with what the trainer logs."""

    loss: Tensor
    """Scalar to minimise (reconstruction plus the architecture's penalties)."""
    parts: dict[str, Tensor]
    """Named scalar terms (``mse``, ``l1``, ``auxk``, ...), detached."""
    fired: Tensor
    """``[d_sae]`` bool: which latents were active on at least one row of the batch."""
    l0: Tensor
    """Mean number of active latents per row (detached scalar)."""
    fvu: Tensor
    """Fraction of variance unexplained on this batch (detached scalar)."""


class Transcoder(nn.Module, abc.ABC):
    """Base transcoder: weights, normalisation buffers, ``encode``/``decode``/``forward``.

    Subclasses implement :meth:`activation` (pre-activations to sparse codes) and
    :meth:`normalised_loss`. Sparse architectures (TopK) may also override :meth:`forward_sparse`.
    """

    arch: ClassVar[str] = ""
    """Registry name, set by :func:`interp.transcoders.registry.register`."""
    has_skip: ClassVar[bool] = False
    """Whether the architecture has the linear input-to-output path ``W_skip``."""
    dec_init_norm: ClassVar[float] = 0.1
    """Norm of each decoder row at initialisation."""

    def __init__(self, cfg: ArchConfig, seed: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        d_in, d_out, d_sae = cfg.d_in, cfg.d_out, cfg.d_sae
        # Decoder rows are random directions of norm dec_init_norm; the encoder starts as
        # the decoder's transpose when shapes allow (Gao et al. 2024; Conerly et al. 2024).
        scale = self.dec_init_norm
        w_dec = torch.randn(d_sae, d_out, generator=generator)
        w_dec = scale * w_dec / w_dec.norm(dim=1, keepdim=True)
        if d_in == d_out:
            w_enc = w_dec.T.clone()
        else:
            w_enc = torch.randn(d_in, d_sae, generator=generator)
            w_enc = scale * w_enc / w_enc.norm(dim=0, keepdim=True)
        self.W_enc = nn.Parameter(w_enc.contiguous())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(w_dec.contiguous())
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        if self.has_skip:
            self.W_skip = nn.Parameter(torch.zeros(d_out, d_in))
        self.register_buffer("in_mean", torch.zeros(d_in))
        self.register_buffer("in_scale", torch.ones(()))
        self.register_buffer("out_mean", torch.zeros(d_out))
        self.register_buffer("out_scale", torch.ones(()))

    # --- normalisation -------------------------------------------------------------

    def normalise_in(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_in"]:
        return (x - self.in_mean) / self.in_scale

    def normalise_out(self, y: Float[Tensor, "batch d_out"]) -> Float[Tensor, "batch d_out"]:
        return (y - self.out_mean) / self.out_scale

    def denormalise_out(self, y_n: Float[Tensor, "batch d_out"]) -> Float[Tensor, "batch d_out"]:
        return y_n * self.out_scale + self.out_mean

    @torch.no_grad()
    def set_normalisation(self, x: Float[Tensor, "n d_in"], y: Float[Tensor, "n d_out"]) -> None:
        """Record means and scalar scales from a sample, and start ``b_dec`` at the data mean.

        After this, normalised inputs and targets have mean zero and mean squared norm
        ``d_in`` / ``d_out`` (unit variance per dimension on average). ``b_dec`` starts at
        zero, the mean of the normalised targets (bias initialisation from the data mean).
        """
        self.in_mean.copy_(x.mean(0))
        self.out_mean.copy_(y.mean(0))
        in_ms = (x - self.in_mean).pow(2).sum(-1).mean() / self.cfg.d_in
        out_ms = (y - self.out_mean).pow(2).sum(-1).mean() / self.cfg.d_out
        self.in_scale.copy_(in_ms.sqrt().clamp_min(1e-8))
        self.out_scale.copy_(out_ms.sqrt().clamp_min(1e-8))
        self.b_dec.zero_()

    @torch.no_grad()
    def fold_normalisation(self) -> None:
        """Fold the normalisation buffers into the weights; the function is unchanged."""
        s_in, s_out = self.in_scale.clone(), self.out_scale.clone()
        mu_in, mu_out = self.in_mean.clone(), self.out_mean.clone()
        w_enc = self.W_enc / s_in
        self.b_enc.sub_(mu_in @ w_enc)
        self.W_enc.copy_(w_enc)
        self.W_dec.mul_(s_out)
        b_dec = self.b_dec * s_out + mu_out
        if self.has_skip:
            w_skip = self.W_skip * (s_out / s_in)
            b_dec = b_dec - mu_in @ w_skip.T
            self.W_skip.copy_(w_skip)
        self.b_dec.copy_(b_dec)
        self.in_mean.zero_()
        self.out_mean.zero_()
        self.in_scale.fill_(1.0)
        self.out_scale.fill_(1.0)

    # --- forward -------------------------------------------------------------------

    def pre_acts(self, x_n: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        return x_n @ self.W_enc + self.b_enc

    @abc.abstractmethod
    def activation(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        """Latent activations from pre-activations (the architecture's nonlinearity)."""

    def decode_normalised(
        self, acts: Float[Tensor, "batch d_sae"], x_n: Float[Tensor, "batch d_in"]
    ) -> Float[Tensor, "batch d_out"]:
        y_n = acts @ self.W_dec + self.b_dec
        if self.has_skip:
            y_n = y_n + x_n @ self.W_skip.T
        return y_n

    def encode(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_sae"]:
        """Dense latent activations of raw inputs (any leading shape)."""
        lead = x.shape[:-1]
        acts = self.activation(self.pre_acts(self.normalise_in(x.reshape(-1, self.cfg.d_in))))
        return acts.reshape(*lead, self.cfg.d_sae)

    def forward(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_out"]:
        """Predicted MLP output for raw MLP inputs (any leading shape is flattened and restored)."""
        lead = x.shape[:-1]
        x_flat = x.reshape(-1, self.cfg.d_in)
        y = self.forward_with_acts(x_flat)[0]
        return y.reshape(*lead, self.cfg.d_out)

    def forward_with_acts(
        self, x: Float[Tensor, "batch d_in"]
    ) -> tuple[Float[Tensor, "batch d_out"], Float[Tensor, "batch d_sae"]]:
        x_n = self.normalise_in(x)
        acts = self.activation(self.pre_acts(x_n))
        return self.denormalise_out(self.decode_normalised(acts, x_n)), acts

    def extra_repr(self) -> str:
        """What ``repr`` shows: the shape, then the architecture's own settings."""
        from dataclasses import fields

        c = self.cfg
        settings = ", ".join(f"{f.name}={getattr(c, f.name)!r}" for f in fields(c) if f.name not in ("d_in", "d_out", "d_sae"))
        return f"d_in={c.d_in}, d_sae={c.d_sae}, d_out={c.d_out}" + (f", {settings}" if settings else "")

    def decoder_norms(self) -> Float[Tensor, " d_sae"]:
        return self.W_dec.norm(dim=1)

    # --- training ------------------------------------------------------------------

    def loss(
        self,
        x: Float[Tensor, "batch d_in"],
        y: Float[Tensor, "batch d_out"],
        *,
        progress: float,
        dead: Bool[Tensor, " d_sae"] | None = None,
    ) -> LossOutput:
        """Training loss on raw ``(x, y)``; ``progress`` in [0, 1] drives coefficient warm-ups;
        ``dead`` marks latents the trainer counts as dead (for auxiliary losses). Normalises
        both and hands them to the architecture's :meth:`normalised_loss`."""
        return self.normalised_loss(self.normalise_in(x), self.normalise_out(y), progress=progress, dead=dead)

    @abc.abstractmethod
    def normalised_loss(
        self,
        x_n: Float[Tensor, "batch d_in"],
        y_n: Float[Tensor, "batch d_out"],
        *,
        progress: float,
        dead: Bool[Tensor, " d_sae"] | None,
    ) -> LossOutput:
        """The architecture's loss on normalised inputs and targets (see :meth:`loss`)."""

    def after_step(self) -> None:
        """Hook run after each optimiser step (e.g. to renormalise decoder rows)."""

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter name (others train at the schedule's rate)."""
        return {}


def ramped(value: float, warmup: float, progress: float) -> float:
    """``value`` ramped up linearly over the first ``warmup`` fraction of training (a penalty
    coefficient's warm-up); ``progress`` is the fraction of training done."""
    if warmup == 0:
        return value
    return value * min(1.0, progress / warmup)


def reconstruction_stats(y_hat_n: Tensor, y_n: Tensor) -> tuple[Tensor, Tensor]:
    """``(mse, fvu)``: mean squared error per element (with gradient; the loss term) and the
    fraction of variance unexplained on the batch (detached)."""
    err = (y_hat_n - y_n).pow(2)
    total = (y_n - y_n.mean(0)).pow(2).sum().clamp_min(1e-12)
    return err.mean(), (err.sum() / total).detach()


def fired_and_l0(acts: Tensor) -> tuple[Tensor, Tensor]:
    active = acts > 0
    return active.any(0), active.sum(-1).float().mean()
