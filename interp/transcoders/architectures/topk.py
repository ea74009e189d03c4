"""TopK transcoder with the AuxK loss for dead latents (Gao et al. 2024, "Scaling and
evaluating sparse autoencoders").

``f = TopK_k(ReLU(x_n @ W_enc + b_enc))``: exactly ``k`` latents (at most; ReLU may zero
some) are active per row, so L0 is set directly rather than tuned through a penalty. The
encoder and the decoder run through :mod:`interp.kernels` (``topk_activation`` sends
gradient only to the selected latents; ``sparse_decode`` sums ``k`` decoder rows).

AuxK: the latents that have not fired for the trainer's dead window each get a chance to
model the residual error: the top ``aux_k`` of the dead latents' pre-activations decode
the residual ``y_n - y_hat_n``; the loss adds ``aux_coefficient`` times that
reconstruction's squared error normalised by the residual's variance. Decoder rows are
kept at unit norm after every step.

SAELens 6.x has no TopK transcoder class; these transcoders are saved with
``architecture: "interp_topk_transcoder"`` and ``k`` at the top level of ``cfg.json``.
:func:`interp.transcoders.load` restores them exactly; SAELens loads them once
:mod:`interp.transcoders.saelens` has registered its class for them, and refuses them before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import ConfigError
from interp.transcoders.base import ArchConfig, LossOutput, Transcoder, reconstruction_stats
from interp.transcoders.registry import register


@dataclass
class TopKConfig(ArchConfig):
    """A TopK transcoder with the AuxK auxiliary loss."""

    k: int = 32
    """Active latents per row (the L0)."""
    aux_k: int | None = None
    """Dead latents used by the AuxK loss per row; None = d_out // 2 (Gao et al.)."""
    aux_coefficient: float = 1 / 32
    """Weight of the AuxK loss (Gao et al. use 1/32)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, got {self.k}")
        if self.k > self.d_sae:
            raise ConfigError(f"--k must be between 1 and d_sae={self.d_sae} (--expansion x d_model), got {self.k}")
        if self.aux_k is not None and self.aux_k < 1:
            raise ConfigError(f"--aux-k must be at least 1, got {self.aux_k}")
        if self.aux_k is not None and self.aux_k > self.d_sae:
            raise ConfigError(f"--aux-k must be between 1 and d_sae={self.d_sae}, got {self.aux_k}")
        if self.aux_coefficient < 0:
            raise ConfigError(f"--aux-coefficient must be at least 0, got {self.aux_coefficient}")


class TopKMixin:
    """TopK activation, sparse decoding and the AuxK loss; shared with skip-TopK."""

    cfg: TopKConfig
    dec_init_norm = 1.0

    def sparse_acts(
        self, pre: Float[Tensor, "batch d_sae"]
    ) -> tuple[Float[Tensor, "batch k"], Int[Tensor, "batch k"]]:
        from interp.kernels import topk_activation

        return topk_activation(pre, self.cfg.k)

    def activation(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        values, indices = self.sparse_acts(pre)
        return torch.zeros_like(pre).scatter_(-1, indices, values)

    def decode_sparse(
        self, values: Tensor, indices: Tensor, x_n: Float[Tensor, "batch d_in"]
    ) -> Float[Tensor, "batch d_out"]:
        from interp.kernels import sparse_decode

        y_n = sparse_decode(values, indices, self.W_dec) + self.b_dec
        if self.has_skip:
            y_n = y_n + x_n @ self.W_skip.T
        return y_n

    def forward_with_activations(self, x):
        x_n = self.normalise_in(x)
        pre = self.pre_acts(x_n)
        values, indices = self.sparse_acts(pre)
        y = self.denormalise_out(self.decode_sparse(values, indices, x_n))
        return y, torch.zeros_like(pre).scatter_(-1, indices, values)

    def normalised_loss(self, x_n: Tensor, y_n: Tensor, *, progress: float, dead: Tensor | None) -> LossOutput:
        from interp.kernels import topk_encode

        use_aux = dead is not None and self.cfg.aux_coefficient > 0 and bool(dead.any())
        # Encoder matmul, top-k (and the AuxK top-k over the dead latents) and a sparse backward
        # in one autograd function: the dense pre-activations never get a gradient.
        if use_aux:
            values, indices, aux_values, aux_indices = topk_encode(
                x_n, self.W_enc, self.b_enc, self.cfg.k, aux_mask=dead, aux_k=self.aux_k_for(dead))
        else:
            values, indices = topk_encode(x_n, self.W_enc, self.b_enc, self.cfg.k)
        y_hat_n = self.decode_sparse(values, indices, x_n)
        mse, fvu = reconstruction_stats(y_hat_n, y_n)
        loss = mse
        parts = {"mse": mse.detach()}
        if use_aux:
            aux = self.auxk_loss(aux_values, aux_indices, (y_n - y_hat_n).detach())
            loss = loss + self.cfg.aux_coefficient * aux
            parts["auxk"] = aux.detach()
        active = values.detach() > 0
        # A latent fired if any of its selections was positive (an index_add, not a boolean-mask gather).
        hits = torch.zeros(self.cfg.d_sae, device=x_n.device).index_add_(0, indices.reshape(-1), active.reshape(-1).float())
        return LossOutput(loss, parts, hits > 0, active.sum(-1).float().mean(), fvu)

    def aux_k_for(self, dead: Tensor) -> int:
        """Dead latents the AuxK loss uses per row: ``cfg.aux_k`` (None: d_out // 2), at most the dead ones."""
        return min(self.cfg.aux_k or max(1, self.cfg.d_out // 2), int(dead.sum()))

    def auxk_loss(self, values: Tensor, indices: Tensor, residual: Tensor) -> Tensor:
        """The AuxK loss of the dead latents' selection ``(values, indices)``: their reconstruction of
        the residual, its squared error over the residual's variance."""
        from interp.kernels import sparse_decode

        recon = sparse_decode(values, indices, self.W_dec)
        variance = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        return (recon - residual).pow(2).sum(-1).mean() / variance

    @torch.no_grad()
    def after_step(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))


@register("topk", TopKConfig, sparse_k=True)
class TopKTranscoder(TopKMixin, Transcoder):
    """``TopK(ReLU(x W_enc + b_enc)) W_dec + b_dec``, trained with MSE + AuxK."""

    cfg: TopKConfig
