"""What the replacement model reads its features through: per-layer transcoders or one
cross-layer transcoder, behind one interface.

A feature of layer ``l`` reads that layer's read hook and writes, with its own decoder row per
output, to the MLP output of each of its output layers:

* per-layer transcoders (``{layer: Transcoder}``): the read hook is the MLP input
  (:func:`interp.hooks.mlp_input`) and the one output layer is ``l`` itself;
* a cross-layer transcoder (:class:`~interp.transcoders.clt.CrossLayerTranscoder`): the read
  hook is the CLT's (``hook_resid_mid`` or ``ln2.hook_normalized``) and the output layers are
  ``l`` and every later CLT layer. A feature's total write is the sum over them.

Layer ``l'``'s MLP output is then the reconstruction from every feature writing there, plus the
skip path of ``l'`` (linear in its read hook), plus the error term. :class:`Dictionary` states
that contract; :class:`PerLayer` and :class:`CrossLayer` implement it on folded transcoders
(weights acting on raw activations), and :func:`as_dictionary` picks one after
:func:`interp.transcoders.for_model` has checked the transcoders against the model.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.hooks import mlp_input
from interp.transcoders.base import Transcoder
from interp.transcoders.clt import CrossLayerTranscoder
from interp.transcoders.loading import Run, for_model


class Dictionary(abc.ABC):
    """The features of a replacement model, layer by layer (folded weights, raw activations)."""

    kind: Literal["per-layer", "cross-layer"]
    transcoders: Run
    """The folded transcoders: ``{layer: Transcoder}`` or the one CLT."""
    layers: list[int]
    """The model layers whose features read there and whose MLP outputs they reconstruct, ascending."""

    @abc.abstractmethod
    def read_hook(self, layer: int) -> str:
        """The hook whose value layer ``layer``'s features read (and its skip path is linear in)."""

    @abc.abstractmethod
    def encode(self, layer: int, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_sae"]:
        """Layer ``layer``'s feature activations from its read hook."""

    @abc.abstractmethod
    def pre_activation(self, layer: int, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_sae"]:
        """Layer ``layer``'s feature pre-activations, affine in its read hook (what an edge targets)."""

    @abc.abstractmethod
    def encoder_rows(self, layer: int, features: Int[Tensor, " n"]) -> Float[Tensor, "n d_model"]:
        """The gradient of each feature's pre-activation at its read hook (its encoder column)."""

    @abc.abstractmethod
    def output_layers(self, layer: int) -> list[int]:
        """The model layers whose MLP output a feature of ``layer`` writes to, ascending."""

    @abc.abstractmethod
    def decoder_rows(self, layer: int, features: Int[Tensor, " n"]) -> Float[Tensor, "n n_out d_model"]:
        """Each feature's decoder row into each of :meth:`output_layers` (per unit activation)."""

    @abc.abstractmethod
    def reconstruct(self, layer: int, acts: Mapping[int, Tensor]) -> Float[Tensor, "*batch d_model"]:
        """MLP output ``layer`` as the features writing there rebuild it, decoder bias included and
        skip path excluded, from ``acts[source]`` ([*batch, d_sae]) of every source layer."""

    @abc.abstractmethod
    def skip(self, layer: int, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_model"]:
        """Layer ``layer``'s skip path from its read hook, linear in ``x`` (zeros without one)."""

    @abc.abstractmethod
    def has_skip(self, layer: int) -> bool:
        """Whether layer ``layer`` has a skip path."""

    def total_write(self, layer: int, features: Int[Tensor, " n"]) -> Float[Tensor, "n d_model"]:
        """Each feature's decoder rows summed over its output layers: what it adds to the
        residual stream in all, per unit activation."""
        return self.decoder_rows(layer, features).sum(1)


class PerLayer(Dictionary):
    """``{layer: Transcoder}``: each feature reads its layer's MLP input and writes that MLP's output."""

    kind = "per-layer"

    def __init__(self, model, transcoders: dict[int, Transcoder]) -> None:
        self.transcoders = transcoders
        self.layers = sorted(transcoders)
        self._hooks = {layer: mlp_input(model, layer) for layer in self.layers}

    def read_hook(self, layer: int) -> str:
        return self._hooks[layer]

    def encode(self, layer, x):
        return self.transcoders[layer].encode(x)

    def pre_activation(self, layer, x):
        return self.transcoders[layer].pre_activation(x)

    def encoder_rows(self, layer, features):
        w_enc = self.transcoders[layer].W_enc
        return w_enc[:, features.to(w_enc.device)].T

    def output_layers(self, layer):
        return [layer]

    def decoder_rows(self, layer, features):
        w_dec = self.transcoders[layer].W_dec
        return w_dec[features.to(w_dec.device)][:, None]

    def reconstruct(self, layer, acts):
        return self.transcoders[layer].decode(acts[layer])

    def skip(self, layer, x):
        return self.transcoders[layer].skip(x)

    def has_skip(self, layer):
        return bool(self.transcoders[layer].has_skip)


class CrossLayer(Dictionary):
    """One cross-layer transcoder: a feature of layer ``l`` writes to ``l`` and every later CLT layer."""

    kind = "cross-layer"

    def __init__(self, clt: CrossLayerTranscoder) -> None:
        self.transcoders = clt
        self.layers = list(clt.layers)

    def read_hook(self, layer):
        return self.transcoders.hook_names_in[self.transcoders.index(layer)]

    def encode(self, layer, x):
        return self.transcoders.encode_layer(x, layer)

    def pre_activation(self, layer, x):
        return self.transcoders.layer_pre_activation(x, layer)

    def encoder_rows(self, layer, features):
        clt = self.transcoders
        i = clt.index(layer)
        return (clt.W_enc[i][:, features.to(clt.W_enc.device)] / clt.in_scale[i]).T

    def output_layers(self, layer):
        return self.transcoders.output_layers(layer)

    def decoder_rows(self, layer, features):
        return self.transcoders.decoder_vectors(layer, features)

    def reconstruct(self, layer, acts):
        clt = self.transcoders
        sources = clt.layers[: clt.index(layer) + 1]
        lead = acts[layer].shape[:-1]
        code = torch.stack([acts[s].reshape(-1, clt.d_sae) for s in sources], 1)
        return clt.decode_output(code, layer).reshape(*lead, clt.d_out)

    def skip(self, layer, x):
        return self.transcoders.skip_layer(x, layer)

    def has_skip(self, layer):
        return bool(self.transcoders.cfg.skip_connection)


def as_dictionary(model, transcoders: Mapping[int, object] | CrossLayerTranscoder | Dictionary, *,
                  force: bool = False) -> Dictionary:
    """The :class:`Dictionary` of ``transcoders`` on ``model``: checked and folded by
    :func:`interp.transcoders.for_model` (SAELens transcoders converted; transcoders of another
    model refused unless ``force``); a dictionary is returned as it is."""
    if isinstance(transcoders, Dictionary):
        return transcoders
    run = for_model(model, transcoders, cross_layer=True, force=force)
    return CrossLayer(run) if isinstance(run, CrossLayerTranscoder) else PerLayer(model, run)


__all__ = ["CrossLayer", "Dictionary", "PerLayer", "as_dictionary"]
