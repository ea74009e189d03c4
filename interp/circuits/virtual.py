"""Input-invariant connections between transcoder features (Dunefsky et al. 2024).

These are the weights part of an edge: how strongly a feature *can* drive another,
whatever the input. The input-dependent edge of :mod:`interp.circuits.attribution` is
(in a model without attention or LayerNorm in between) exactly the source activation
times these weights; in a real model the residual path between them also goes through
frozen LayerNorm scales and attention, which the attribution includes.

Per-layer transcoders: pass the two transcoders. A cross-layer transcoder (Ameisen et al.
2025): pass the CLT and the layers, ``virtual_weights(clt, source_layer=s, target_layer=t)``;
a feature of layer ``s`` reaches layer ``t``'s read hook through its writes to the MLP outputs
of its output layers before ``t`` (``s <= o < t``), so its virtual weight is the sum of those
decoder rows dotted with the encoder column. ``deembedding`` and ``direct_logit_effects`` take
``layer=`` for a CLT; a CLT feature's direct logit effect is its total write (every output
layer) through the unembedding.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import ConfigError


def _raw(transcoder):
    """The transcoder with weights that act on raw activations (normalisation folded)."""
    from interp.transcoders.formats import as_transcoder

    tc = as_transcoder(transcoder)
    return tc if tc.is_folded else tc.folded()


def _clt(obj):
    """The folded CLT when ``obj`` is a cross-layer transcoder, else None."""
    from interp.transcoders.clt import CrossLayerTranscoder

    if not isinstance(obj, CrossLayerTranscoder):
        return None
    return obj if obj.is_folded else obj.folded()


def _clt_encoder(clt, layer: int) -> Tensor:
    return clt.W_enc[clt.index(layer)] / clt.in_scale[clt.index(layer)]


def _no_layers(what: str, **layers) -> None:
    given = [f"{name}={value}" for name, value in layers.items() if value is not None]
    if given:
        raise ConfigError(f"{what} of per-layer transcoders takes no {', '.join(given)}: each transcoder is one layer's")


@torch.no_grad()
def virtual_weights(source, target=None, *, source_layer: int | None = None,
                    target_layer: int | None = None) -> Float[Tensor, "d_sae_source d_sae_target"]:
    """Source decoder rows . target encoder columns: ``W_dec_src @ W_enc_tgt``.

    For a CLT pass it as ``source`` (``target`` None or the same CLT) with ``source_layer < target_layer``:
    ``sum over o in output_layers(s), o < t of W_dec[s -> o] @ W_enc[t]``.
    """
    clt = _clt(source)
    if clt is None and _clt(target) is not None:
        raise ConfigError("virtual_weights from a per-layer transcoder into a CLT is not defined: pass the CLT as source "
                          "with source_layer and target_layer")
    if clt is None:
        if target is None:
            raise ConfigError("virtual_weights of per-layer transcoders needs a target transcoder")
        _no_layers("virtual_weights", source_layer=source_layer, target_layer=target_layer)
        return _raw(source).W_dec @ _raw(target).W_enc
    if target is not None and target is not source:
        raise ConfigError("virtual_weights of a CLT reads and writes through the same CLT: pass target=None")
    if source_layer is None or target_layer is None:
        raise ConfigError(f"virtual_weights of a CLT needs source_layer and target_layer (two of its layers {clt.layers})")
    clt.index(source_layer), clt.index(target_layer)  # each refused with its own message when not a CLT layer
    if not source_layer < target_layer:
        raise ConfigError(f"a feature of layer {source_layer} cannot reach layer {target_layer}: "
                          "pass source_layer < target_layer")
    outputs = clt.output_layers(source_layer)
    rows = clt.decoder_vectors(source_layer)[:, [o < target_layer for o in outputs]].sum(1)
    return rows @ _clt_encoder(clt, target_layer)


@torch.no_grad()
def deembedding(model, transcoder, *, layer: int | None = None) -> Float[Tensor, "d_vocab d_sae"]:
    """Each token's embedding read by each feature's encoder: ``W_E @ W_enc`` (a CLT: of ``layer``)."""
    clt = _clt(transcoder)
    if clt is None:
        _no_layers("deembedding", layer=layer)
        return model.W_E @ _raw(transcoder).W_enc
    if layer is None:
        raise ConfigError(f"deembedding of a CLT needs layer= (one of its layers {clt.layers})")
    return model.W_E @ _clt_encoder(clt, layer)


@torch.no_grad()
def direct_logit_effects(model, transcoder, *, layer: int | None = None) -> Float[Tensor, "d_sae d_vocab"]:
    """Each feature's decoder row through the unembedding: ``W_dec @ W_U`` (a CLT: the total
    write of ``layer``'s features, summed over their output layers)."""
    clt = _clt(transcoder)
    if clt is None:
        _no_layers("direct_logit_effects", layer=layer)
        return _raw(transcoder).W_dec @ model.W_U
    if layer is None:
        raise ConfigError(f"direct_logit_effects of a CLT needs layer= (one of its layers {clt.layers})")
    return clt.total_write(layer) @ model.W_U
