"""The ``clt`` architecture: a cross-layer transcoder's settings and training loss.

The model (weights, inference, the attribution interface) is
:class:`interp.transcoders.clt.CrossLayerTranscoder`; this module adds how it trains, from
the stacked ``(x, y)`` of all its layers (one forward pass feeds them all):

- **reconstruction**: the mean squared error per element over every output layer, each
  layer's target normalised to unit variance per dimension (so every layer weighs the same;
  Ameisen et al. sum unnormalised squared errors over layers, which weighs the layers with
  the largest MLP outputs most);
- **ReLU and JumpReLU**: plus the sparsity penalty of Ameisen et al. 2025,
  ``sparsity_coefficient * sum over layers l and latents i of tanh(tanh_scale * ||W_dec,i^l|| * a_i^l)``
  (mean over rows), where ``||W_dec,i^l||`` is the norm of latent ``i``'s decoder rows into all
  its output layers *concatenated*, as the paper defines it (not the sum of the per-output
  norms that Anthropic's crosscoders use). Small activations pay about the L1 price, large
  ones saturate at 1, an L0-like cost. The coefficient ramps up over ``sparsity_warmup``. A
  latent that writes the same vector to two layers costs ``tanh(c sqrt(2) a)``, two latents
  that each write one cost ``2 tanh(c a)``: the penalty prefers one latent over a chain of
  copies. JumpReLU thresholds get the straight-through gradients of
  :mod:`interp.transcoders.architectures.jumprelu` (through the activations in the penalty
  and the reconstruction; there is no separate L0 term), train at ``threshold_lr_scale``
  times the schedule's rate and start at each latent's ``initial_density`` quantile.
  The paper's extra pre-activation loss against dead latents is not implemented.
- **TopK** (``topk_over="layer"``: ``k`` per layer; ``"all"``: ``k`` over all layers' latents):
  plus the AuxK loss of Gao et al. over the dead latents of every layer, decoding the
  residual into every output layer; after each step every latent's concatenated decoder is
  renormalised to unit norm (its split between output layers stays free). With ``"all"``, the
  running mean of each row's ``k``-th largest pre-activation (``topk_threshold``, updated at
  rate ``1/50`` per step) is the threshold every inference method uses.

The sparse decode runs through :func:`interp.kernels.cross_layer_decode` for TopK; ReLU and
JumpReLU codes are dense during training and decode one output block at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args, get_type_hints

import torch
from torch import Tensor

from interp.errors import ConfigError
from interp.kernels import cross_layer_decode, decoder_block
from interp.transcoders.architectures.jumprelu import MIN_THRESHOLD, jumprelu, quantile_thresholds
from interp.transcoders.base import ArchConfig, LossOutput, ramped, reconstruction_stats
from interp.transcoders.clt import CrossLayerTranscoder
from interp.transcoders.registry import register

THRESHOLD_RATE = 1 / 50
"""How fast ``topk_threshold`` follows each step's mean ``k``-th largest pre-activation."""


@dataclass
class CLTConfig(ArchConfig):
    """A cross-layer transcoder (Ameisen et al. 2025) over the run's layers."""

    shape: ClassVar[tuple[str, ...]] = ("d_in", "d_out", "d_sae", "n_layers")

    n_layers: int = 1
    """Layers the CLT covers (from the run's --layers; d_sae latents each)."""
    activation: Literal["topk", "relu", "jumprelu"] = "topk"
    """The cross-layer transcoder's activation: 'topk' (k latents, see --topk-over), 'relu' or 'jumprelu' (with the tanh sparsity penalty of Ameisen et al.)."""
    topk_over: Literal["layer", "all"] = "layer"
    """For a clt with --activation topk: 'layer' keeps the top k of each layer (L0 = k per layer), 'all' the top k over all its layers (L0 = k in all; inference then uses the learned threshold topk_threshold)."""
    k: int = 32
    """Active latents per row (the L0)."""
    aux_k: int | None = None
    """Dead latents used by the AuxK loss per row; None = d_out // 2 (Gao et al.)."""
    aux_coefficient: float = 1 / 32
    """Weight of the AuxK loss (Gao et al. use 1/32)."""
    input_site: Literal["resid_mid", "ln2_normalized"] = "resid_mid"
    """What a clt reads at each layer: 'resid_mid' (blocks.L.hook_resid_mid, as circuit-tracer's CLTs) or 'ln2_normalized' (blocks.L.ln2.hook_normalized, the MLP's normalised input; not on post-norm models such as OLMo 2)."""
    skip_connection: bool = False
    """Give a clt a linear skip path from each layer's input to its own MLP output (W_skip)."""
    sparsity_coefficient: float = 2e-2
    """For a clt with --activation relu or jumprelu: weight lambda of the sparsity penalty lambda * sum tanh(c * ||decoder|| * a), relative to the per-element MSE of the normalised targets; higher = sparser."""
    tanh_scale: float = 1.0
    """The c in a clt's sparsity penalty tanh(c * ||decoder|| * a): small c is an L1 penalty, large c approaches L0."""
    sparsity_warmup: float = 0.05
    """Fraction of training over which a clt's sparsity coefficient ramps up linearly from zero."""
    bandwidth: float = 0.05
    """Width of the rectangle kernel of the threshold's pseudo-derivative (JumpReLU)."""
    initial_threshold: float = 0.05
    """Threshold of every latent at initialisation, and the lowest the data-driven start may give (JumpReLU)."""
    threshold_lr_scale: float = 10.0
    """The thresholds' learning rate as a multiple of the schedule's (JumpReLU)."""
    initial_density: float | None = 1 / 16
    """Start each threshold at the quantile of its pre-activations on the first batch at which about this fraction of the latents fire (JumpReLU); None keeps initial_threshold."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_site == "mlp_in":
            raise ConfigError(
                "--input-site mlp_in is ambiguous: interp used it for the MLP's normalised input, now ln2_normalized "
                "(blocks.L.ln2.hook_normalized), and TransformerLens means blocks.L.hook_mlp_in, the residual before ln2, "
                "which a clt reads as resid_mid; pass one of those two"
            )
        for name in ("activation", "topk_over", "input_site"):
            allowed = get_args(get_type_hints(CLTConfig)[name])
            if getattr(self, name) not in allowed:
                raise ConfigError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.n_layers < 1:
            raise ConfigError(f"n_layers must be positive, got {self.n_layers}")
        most = self.d_sae * (self.n_layers if self.topk_over == "all" else 1)
        if self.activation == "topk" and not 1 <= self.k <= most:
            raise ConfigError(f"--k must be between 1 and {most} (d_sae per layer{' times layers' if self.topk_over == 'all' else ''}), got {self.k}")
        if self.aux_k is not None and not 1 <= self.aux_k <= self.d_sae * self.n_layers:
            raise ConfigError(f"--aux-k must be between 1 and the CLT's {self.d_sae * self.n_layers} latents, got {self.aux_k}")
        for name in ("aux_coefficient", "sparsity_coefficient"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("tanh_scale", "bandwidth", "initial_threshold", "threshold_lr_scale"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0 <= self.sparsity_warmup <= 1:
            raise ConfigError(f"--sparsity-warmup is a fraction of training in [0, 1], got {self.sparsity_warmup}")
        if self.initial_density is not None and not 0 < self.initial_density <= 1:
            raise ConfigError(f"--initial-density is a fraction of the latents in (0, 1] (or None), got {self.initial_density}")


@register("clt", CLTConfig)
class CLT(CrossLayerTranscoder):
    """A cross-layer transcoder with its training loss (see the module docstring)."""

    cfg: CLTConfig

    @torch.no_grad()
    def set_normalisation(self, x: Tensor, y: Tensor) -> None:
        """Record each layer's normalisation (see the base class); JumpReLU thresholds start from data."""
        super().set_normalisation(x, y)
        if self.cfg.activation == "jumprelu" and self.cfg.initial_density is not None:
            pre = self.pre_acts(self.normalise_in(x))
            self.threshold.copy_(quantile_thresholds(pre, self.cfg.initial_density, self.cfg.initial_threshold))

    def lr_scales(self) -> dict[str, float]:
        return {"threshold": self.cfg.threshold_lr_scale} if self.cfg.activation == "jumprelu" else {}

    def trained_buffers(self) -> list[Tensor]:
        return [self.topk_threshold] if self.cfg.activation == "topk" and self.cfg.topk_over == "all" else []

    @torch.no_grad()
    def after_step(self) -> None:
        """TopK: unit-norm concatenated decoders; JumpReLU: thresholds kept positive."""
        if self.cfg.activation == "jumprelu":
            self.threshold.clamp_(min=MIN_THRESHOLD)
        if self.cfg.activation != "topk":
            return
        norms = self.decoder_norms().clamp_min(1e-8)
        for m in range(self.n_layers):
            decoder_block(self.W_dec.data, m, self.d_sae).view(m + 1, self.d_sae, self.d_out).div_(norms[: m + 1, :, None])

    def normalised_loss(self, x_n: Tensor, y_n: Tensor, *, progress: float, dead: Tensor | None) -> LossOutput:
        if self.cfg.activation == "topk":
            return self._topk_loss(x_n, y_n, dead)
        return self._penalised_loss(x_n, y_n, progress)

    def _skip_n(self, x_n: Tensor) -> Tensor | float:
        return torch.einsum("bli,loi->blo", x_n, self.W_skip) if self.cfg.skip_connection else 0.0

    def _penalised_loss(self, x_n: Tensor, y_n: Tensor, progress: float) -> LossOutput:
        cfg, F = self.cfg, self.d_sae
        pre = self.pre_acts(x_n)
        acts = torch.relu(pre) if cfg.activation == "relu" else jumprelu(pre, self.threshold, cfg.bandwidth)
        outputs = [acts[:, : m + 1].reshape(len(acts), -1) @ decoder_block(self.W_dec, m, F) for m in range(self.n_layers)]
        y_hat = torch.stack(outputs, 1) + self.b_dec + self._skip_n(x_n)
        mse, fvu = reconstruction_stats(y_hat, y_n)
        penalty = torch.tanh(cfg.tanh_scale * self.decoder_norms() * acts).sum((1, 2)).mean()
        loss = mse + ramped(cfg.sparsity_coefficient, cfg.sparsity_warmup, progress) * penalty
        active = acts.detach() > 0
        parts = {"mse": mse.detach(), "sparsity": penalty.detach(), **_per_layer(self.layers, active.sum(-1), y_hat, y_n)}
        return LossOutput(loss, parts, active.any(0).reshape(-1), active.sum((1, 2)).float().mean(), fvu)

    def _topk_loss(self, x_n: Tensor, y_n: Tensor, dead: Tensor | None) -> LossOutput:
        from interp.kernels import topk_activation, topk_encode

        cfg, L, F = self.cfg, self.n_layers, self.d_sae
        use_aux = dead is not None and cfg.aux_coefficient > 0 and bool(dead.any())
        pre = self.pre_acts(x_n) if use_aux or cfg.topk_over == "all" else None
        if cfg.topk_over == "all":
            values, indices = topk_activation(pre.reshape(len(pre), L * F), cfg.k)
            self._track_threshold(values.detach()[:, -1])
        else:
            codes = [topk_activation(pre[:, i], cfg.k) if pre is not None
                     else topk_encode(x_n[:, i].contiguous(), self.W_enc[i], self.b_enc[i], cfg.k) for i in range(L)]
            values = torch.cat([v for v, _ in codes], 1)
            indices = torch.cat([idx + i * F for i, (_, idx) in enumerate(codes)], 1)
        y_hat = cross_layer_decode(values, indices, self.W_dec, L) + self.b_dec + self._skip_n(x_n)
        mse, fvu = reconstruction_stats(y_hat, y_n)
        loss, parts = mse, {"mse": mse.detach()}
        if use_aux:
            aux = self._auxk_loss(pre.reshape(len(pre), L * F), dead, (y_n - y_hat).detach())
            loss = loss + cfg.aux_coefficient * aux
            parts["auxk"] = aux.detach()
        active = values.detach() > 0
        hits = torch.zeros(L * F, device=x_n.device).index_add_(0, indices.reshape(-1), active.reshape(-1).float())
        per_source = torch.zeros(len(values), L, device=x_n.device).scatter_add_(1, indices // F, active.float())
        parts.update(_per_layer(self.layers, per_source, y_hat, y_n))
        return LossOutput(loss, parts, hits > 0, active.sum(-1).float().mean(), fvu)

    @torch.no_grad()
    def _track_threshold(self, kth: Tensor) -> None:
        value = kth.clamp_min(0).mean()
        if float(self.topk_threshold) == 0.0:
            self.topk_threshold.copy_(value)
        else:
            self.topk_threshold.lerp_(value, THRESHOLD_RATE)

    def _auxk_loss(self, pre: Tensor, dead: Tensor, residual: Tensor) -> Tensor:
        from interp.kernels import topk_activation

        aux_k = min(self.cfg.aux_k or max(1, self.d_out // 2), int(dead.sum()))
        values, indices = topk_activation(pre.masked_fill(~dead, float("-inf")), aux_k)
        recon = cross_layer_decode(values, indices, self.W_dec, self.n_layers)
        variance = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        return (recon - residual).pow(2).sum(-1).mean() / variance


def _per_layer(layers: list[int], active_per_layer: Tensor, y_hat: Tensor, y_n: Tensor) -> dict[str, Tensor]:
    """``l0_L`` (active latents of layer L per row) and ``fvu_L`` (output layer L) for the logs."""
    err = (y_hat.detach() - y_n).pow(2).sum((0, 2))
    var = (y_n - y_n.mean(0)).pow(2).sum((0, 2)).clamp_min(1e-12)
    l0 = active_per_layer.float().mean(0)
    out = {}
    for i, layer in enumerate(layers):
        out[f"l0_{layer}"], out[f"fvu_{layer}"] = l0[i], err[i] / var[i]
    return out
