"""What every transcoder architecture shares: weights, normalisation, encode/decode, loss API.

A transcoder reads the MLP's input ``x`` (``blocks.L.ln2.hook_normalized``; in post-norm
blocks such as OLMo 2's, whose MLP reads the residual stream itself, ``blocks.L.hook_resid_mid``)
and predicts the MLP's output ``y`` (``blocks.L.hook_mlp_out``) through a wide, sparsely active
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

:class:`TranscoderModule` is what the trainer, the run files and the loaders need of any
trained module, a per-layer :class:`Transcoder` or a cross-layer transcoder
(:class:`interp.transcoders.clt.CrossLayerTranscoder`): the normalisation (the same code for
one layer's ``[d]`` buffers and a CLT's stacked ``[n_layers, d]`` ones), the training-loss
entry point, the optimiser hooks, the wiring into the model and the folded copy.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from interp.errors import ConfigError
from interp.hooks import MlpInputSite
from interp.transcoders.data import Wiring, layer_wiring


@dataclass
class ArchConfig:
    """Shape and hyperparameters of one transcoder; architectures add their own fields."""

    d_in: int
    """Width of the input (the MLP input, d_model)."""
    d_out: int
    """Width of the output (the MLP output, d_model)."""
    d_sae: int
    """Number of latents (expansion factor times d_in)."""

    shape: ClassVar[tuple[str, ...]] = ("d_in", "d_out", "d_sae")
    """The fields that give the module's shape (set from the data, not settings: no CLI flag)."""

    def __post_init__(self) -> None:
        for name in self.shape:
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


class TranscoderModule(nn.Module, abc.ABC):
    """A trainable transcoder module: the protocol the trainer, run files and loaders use.

    Subclasses create ``b_enc`` and the normalisation buffers ``in_mean``, ``in_scale``,
    ``out_mean``, ``out_scale`` (shaped so that ``(x - in_mean) / in_scale`` broadcasts over
    their inputs), and implement :meth:`_fold`, :meth:`normalised_loss`,
    :meth:`wirings`, :meth:`wire` and :meth:`_empty_like`.
    """

    arch: ClassVar[str] = ""
    """Registry name, set by :func:`interp.transcoders.registry.register`."""
    cross_layer: ClassVar[bool] = False
    """False: one transcoder per MLP layer; True: one module over all the run's layers."""
    cfg: ArchConfig
    model_fingerprint: dict | None = None
    """:func:`interp.models.fingerprint` of the model it was trained on, from its files (``{}``:
    files written before interp recorded it; None: built in memory, never checked); after
    ``for_model(..., force=True)`` on another model, the record of that (``{"forced": True,
    "trained_on": ..., "used_on": ...}``)."""

    # --- normalisation -------------------------------------------------------------

    def normalise_in(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_in"]:
        return (x - self.in_mean) / self.in_scale

    def normalise_out(self, y: Float[Tensor, "*batch d_out"]) -> Float[Tensor, "*batch d_out"]:
        return (y - self.out_mean) / self.out_scale

    def denormalise_out(self, y_n: Float[Tensor, "*batch d_out"]) -> Float[Tensor, "*batch d_out"]:
        return y_n * self.out_scale + self.out_mean

    @torch.no_grad()
    def set_normalisation(self, x: Float[Tensor, "n *stack d_in"], y: Float[Tensor, "n *stack d_out"]) -> None:
        """Record means and scalar scales from a sample, and start ``b_dec`` at the data mean.

        After this, normalised inputs and targets have mean zero and mean squared norm
        ``d_in`` / ``d_out`` (unit variance per dimension on average; per layer for stacked
        rows). ``b_dec`` starts at zero, the mean of the normalised targets (bias
        initialisation from the data mean).
        """
        self.in_mean.copy_(x.mean(0))
        self.out_mean.copy_(y.mean(0))
        in_ms = (x - self.in_mean).pow(2).sum(-1).mean(0) / self.cfg.d_in
        out_ms = (y - self.out_mean).pow(2).sum(-1).mean(0) / self.cfg.d_out
        self.in_scale.copy_(in_ms.sqrt().clamp_min(1e-8).view_as(self.in_scale))
        self.out_scale.copy_(out_ms.sqrt().clamp_min(1e-8).view_as(self.out_scale))
        self.b_dec.zero_()

    @torch.no_grad()
    def fold_normalisation(self) -> None:
        """Fold the normalisation buffers into the weights (the function is unchanged), then
        make the normalisation the identity."""
        if self.is_folded:
            return
        self._fold(self.in_mean.clone(), self.in_scale.clone(), self.out_mean.clone(), self.out_scale.clone())
        self.in_mean.zero_()
        self.out_mean.zero_()
        self.in_scale.fill_(1.0)
        self.out_scale.fill_(1.0)

    @abc.abstractmethod
    def _fold(self, mu_in: Tensor, s_in: Tensor, mu_out: Tensor, s_out: Tensor) -> None:
        """Fold these normalisation statistics into the weights."""

    @property
    def is_folded(self) -> bool:
        """True when the normalisation is the identity (weights act on raw activations)."""
        return bool((self.in_mean == 0).all() and (self.out_mean == 0).all() and (self.in_scale == 1).all()
                    and (self.out_scale == 1).all())

    @abc.abstractmethod
    def _empty_like(self) -> TranscoderModule:
        """A new module of the same architecture, config and wiring (weights not copied)."""

    def folded(self) -> TranscoderModule:
        """A frozen copy with the normalisation folded into the weights: the same function,
        with ``W_enc``, ``W_dec``, ``W_skip`` acting on raw activations (what analyses that read
        the weights directly, such as attribution and virtual weights, need)."""
        copy = self._empty_like().to(self.b_enc.dtype)  # folded in the transcoder's own precision
        copy.load_state_dict(self.state_dict())
        copy.fold_normalisation()
        return copy.to(self.b_enc.device).eval().requires_grad_(False)

    # --- shape and wiring ------------------------------------------------------------

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def d_out(self) -> int:
        return self.cfg.d_out

    @property
    def n_latents(self) -> int:
        """Latents in all; the trainer's dead-latent counters have this length."""
        return self.cfg.d_sae

    @classmethod
    @abc.abstractmethod
    def wirings(cls, layers: list[int], settings: dict, mlp_input: MlpInputSite = "ln2_normalized") -> list[Wiring]:
        """How a run of this architecture over ``layers`` sits in the model, one :class:`Wiring`
        per module (``settings``: the architecture's settings given in the run's config;
        ``mlp_input``: where the model's MLPs read, :func:`interp.hooks.mlp_input_site`)."""

    @abc.abstractmethod
    def wire(self, wiring: Wiring) -> None:
        """Record where this module sits in the model (the hooks it reads and predicts)."""

    def extra_repr(self) -> str:
        """What ``repr`` shows: the shape, then the architecture's own settings."""
        c = self.cfg
        shape = ", ".join(f"{name}={getattr(c, name)}" for name in c.shape)
        settings = ", ".join(f"{f.name}={getattr(c, f.name)!r}" for f in fields(c) if f.name not in c.shape)
        return shape + (f", {settings}" if settings else "")

    # --- training ------------------------------------------------------------------

    def loss(
        self,
        x: Float[Tensor, "batch *stack d_in"],
        y: Float[Tensor, "batch *stack d_out"],
        *,
        progress: float,
        dead: Bool[Tensor, " n_latents"] | None = None,
    ) -> LossOutput:
        """Training loss on raw ``(x, y)``; ``progress`` in [0, 1] drives coefficient warm-ups;
        ``dead`` marks latents the trainer counts as dead (for auxiliary losses). Normalises
        both and hands them to the architecture's :meth:`normalised_loss`."""
        return self.normalised_loss(self.normalise_in(x), self.normalise_out(y), progress=progress, dead=dead)

    @abc.abstractmethod
    def normalised_loss(
        self,
        x_n: Float[Tensor, "batch *stack d_in"],
        y_n: Float[Tensor, "batch *stack d_out"],
        *,
        progress: float,
        dead: Bool[Tensor, " n_latents"] | None,
    ) -> LossOutput:
        """The architecture's loss on normalised inputs and targets (see :meth:`loss`)."""

    def after_step(self) -> None:
        """Hook run after each optimiser step (e.g. to renormalise decoder rows)."""

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter name (others train at the schedule's rate)."""
        return {}

    def trained_buffers(self) -> list[Tensor]:
        """Buffers the module updates while training, outside the optimiser (the trainer averages
        them over data-parallel processes after each step); none here."""
        return []


class Transcoder(TranscoderModule):
    """Base transcoder: weights, normalisation buffers, ``encode``/``decode``/``forward``.

    Subclasses implement :meth:`activation` (pre-activations to sparse codes) and
    :meth:`normalised_loss`. Sparse architectures (TopK) may also override :meth:`forward_sparse`.
    """

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
        self.hook_name: str | None = None
        """The hook point the transcoder reads (set when it is loaded from a run or file)."""
        self.hook_name_out: str | None = None
        """The hook point whose value it predicts."""

    # --- normalisation -------------------------------------------------------------

    def _fold(self, mu_in: Tensor, s_in: Tensor, mu_out: Tensor, s_out: Tensor) -> None:
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

    def pre_activation(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_sae"]:
        """The latents' pre-activations of raw inputs, linear in ``x`` (what an attribution edge targets)."""
        return self.normalise_in(x) @ self.W_enc + self.b_enc

    def decode(self, acts: Float[Tensor, "*batch d_sae"]) -> Float[Tensor, "*batch d_out"]:
        """What the latents write, in the output's raw space: ``acts @ W_dec + b_dec`` of the
        folded transcoder (:meth:`folded`). As in SAELens, the skip path is not included: add
        :meth:`skip`. Both are the same before and after folding: the skip path's constant
        term (from the input mean) belongs to ``b_dec``, as folding puts it there."""
        y = self.denormalise_out(acts @ self.W_dec + self.b_dec)
        if self.has_skip:
            y = y - ((self.in_mean / self.in_scale) @ self.W_skip.T) * self.out_scale
        return y

    def skip(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_out"]:
        """The linear skip path ``x @ W_skip.T`` of the folded transcoder, in raw space (zeros
        without one); linear in ``x``, as in SAELens."""
        if not self.has_skip:
            return x.new_zeros(*x.shape[:-1], self.cfg.d_out)
        return ((x / self.in_scale) @ self.W_skip.T) * self.out_scale

    def forward(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_out"]:
        """Predicted MLP output for raw MLP inputs (any leading shape is flattened and restored)."""
        lead = x.shape[:-1]
        x_flat = x.reshape(-1, self.cfg.d_in)
        y = self.forward_with_activations(x_flat)[0]
        return y.reshape(*lead, self.cfg.d_out)

    def forward_with_activations(
        self, x: Float[Tensor, "batch d_in"]
    ) -> tuple[Float[Tensor, "batch d_out"], Float[Tensor, "batch d_sae"]]:
        """``(output, latent activations)`` for raw inputs (SAELens' name for this)."""
        x_n = self.normalise_in(x)
        acts = self.activation(self.pre_acts(x_n))
        return self.denormalise_out(self.decode_normalised(acts, x_n)), acts

    def forward_with_acts(self, x: Float[Tensor, "batch d_in"]) -> tuple[Tensor, Tensor]:
        """Deprecated name of :meth:`forward_with_activations`."""
        return self.forward_with_activations(x)

    @classmethod
    def wirings(cls, layers: list[int], settings: dict, mlp_input: MlpInputSite = "ln2_normalized") -> list[Wiring]:
        """How a run of this architecture over ``layers`` sits in the model: one transcoder per
        layer, from the MLP input (``mlp_input``) to the MLP output (``settings``: the architecture's settings)."""
        return [layer_wiring(layer, mlp_input) for layer in layers]

    def wire(self, wiring: Wiring) -> None:
        """Record the hooks this transcoder reads and predicts (``hook_name``, ``hook_name_out``)."""
        if len(wiring.layers) != 1:
            raise ConfigError(f"a per-layer transcoder sits at one layer, not {list(wiring.layers)}")
        self.hook_name, self.hook_name_out = wiring.hooks_in[0], wiring.hooks_out[0]

    def _empty_like(self) -> Transcoder:
        from interp.transcoders import registry

        arch = registry.get(self.arch)
        copy = arch.transcoder(arch.config(**{f.name: getattr(self.cfg, f.name) for f in fields(self.cfg)}))
        copy.hook_name, copy.hook_name_out = self.hook_name, self.hook_name_out
        copy.model_fingerprint = self.model_fingerprint
        return copy

    @classmethod
    def from_weights(
        cls,
        W_enc: Float[Tensor, "d_in d_sae"],
        b_enc: Float[Tensor, " d_sae"],
        W_dec: Float[Tensor, "d_sae d_out"],
        b_dec: Float[Tensor, " d_out"] | None = None,
        W_skip: Float[Tensor, "d_out d_in"] | None = None,
        **settings,
    ) -> Transcoder:
        """A transcoder with the given weights, e.g. one planted by hand in a test.

        Called on the base class it builds a ``relu`` transcoder (``skip`` when ``W_skip`` is
        given); called on an architecture's class, that architecture (``settings`` go to its
        config, e.g. ``k`` for TopK). ``W_skip`` is ``[d_out, d_in]``, as SAELens stores it.
        """
        from interp.transcoders import registry

        name = cls.arch or ("skip" if W_skip is not None else "relu")
        arch = registry.get(name)
        d_in, d_sae = W_enc.shape
        d_out = W_dec.shape[1]
        tc = arch.transcoder(arch.config(d_in=d_in, d_out=d_out, d_sae=d_sae, **settings))
        if (W_skip is not None) != tc.has_skip:
            raise ConfigError(f"the {name} architecture {'needs' if tc.has_skip else 'has no'} W_skip")
        with torch.no_grad():
            tc.W_enc.copy_(W_enc)
            tc.b_enc.copy_(b_enc)
            tc.W_dec.copy_(W_dec)
            tc.b_dec.copy_(b_dec if b_dec is not None else torch.zeros(d_out))
            if W_skip is not None:
                if tuple(W_skip.shape) != (d_out, d_in):
                    raise ConfigError(f"W_skip must be [d_out, d_in] = [{d_out}, {d_in}], got {list(W_skip.shape)}")
                tc.W_skip.copy_(W_skip)
        return tc.eval()

    def decoder_norms(self) -> Float[Tensor, " d_sae"]:
        return self.W_dec.norm(dim=1)


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
