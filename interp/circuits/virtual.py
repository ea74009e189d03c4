"""Input-invariant connections between transcoder features (Dunefsky et al. 2024).

These are the weights part of an edge: how strongly a feature *can* drive another,
whatever the input. The input-dependent edge of :mod:`interp.circuits.attribution` is
(in a model without attention or LayerNorm in between) exactly the source activation
times these weights; in a real model the residual path between them also goes through
frozen LayerNorm scales and attention, which the attribution includes.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def _raw(transcoder):
    """The transcoder with weights that act on raw activations (normalisation folded)."""
    from interp.transcoders.formats import as_transcoder

    tc = as_transcoder(transcoder)
    return tc if tc.is_folded else tc.folded()


@torch.no_grad()
def virtual_weights(source, target) -> Float[Tensor, "d_sae_source d_sae_target"]:
    """Source decoder rows . target encoder columns: ``W_dec_src @ W_enc_tgt``."""
    return _raw(source).W_dec @ _raw(target).W_enc


@torch.no_grad()
def deembedding(model, transcoder) -> Float[Tensor, "d_vocab d_sae"]:
    """Each token's embedding read by each feature's encoder: ``W_E @ W_enc``."""
    return model.W_E @ _raw(transcoder).W_enc


@torch.no_grad()
def direct_logit_effects(model, transcoder) -> Float[Tensor, "d_sae d_vocab"]:
    """Each feature's decoder row through the unembedding: ``W_dec @ W_U``."""
    return _raw(transcoder).W_dec @ model.W_U
