"""The small contract that circuit tracing needs from a transcoder.

A transcoder reads a block's MLP input (``blocks.L.ln2.hook_normalized``) and predicts
that block's MLP output (``blocks.L.hook_mlp_out``) through sparse features:

    pre  = x @ W_enc + b_enc                      [pos, d_sae]
    acts = encode(x)  (ReLU, TopK, JumpReLU ...)  [pos, d_sae]
    out  = acts @ W_dec + b_dec (+ x @ W_skip)    [pos, d_out]

Attribution only uses the linear parts (``W_enc``/``b_enc`` for a feature's
pre-activation, ``W_dec``/``b_dec``/``W_skip`` for what it writes) and ``encode`` for
which features are active, so any architecture fits: interp's own transcoders
(:mod:`interp.transcoders`), SAELens transcoders, or the hand-set ones the tests plant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import TranscoderLoadError


@runtime_checkable
class TranscoderLike(Protocol):
    """What :mod:`interp.circuits` reads from a transcoder (see the module docstring)."""

    W_enc: Tensor  # [d_in, d_sae]
    b_enc: Tensor  # [d_sae]
    W_dec: Tensor  # [d_sae, d_out]
    b_dec: Tensor  # [d_out]

    def encode(self, x: Tensor) -> Tensor: ...


def skip_weight(tc) -> Tensor | None:
    """The transcoder's linear skip connection ``W_skip [d_in, d_out]``, or None."""
    w = getattr(tc, "W_skip", None)
    return w if isinstance(w, Tensor) else None


def pre_activation(tc, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_sae"]:
    """A feature's linear pre-activation ``x @ W_enc + b_enc`` (what an edge targets)."""
    return x @ tc.W_enc + tc.b_enc


def decode(tc, acts: Float[Tensor, "*batch d_sae"], x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_out"]:
    """What the transcoder writes: ``acts @ W_dec + b_dec`` plus the skip path of ``x``."""
    out = acts @ tc.W_dec + tc.b_dec
    w_skip = skip_weight(tc)
    if w_skip is not None:
        out = out + x @ w_skip
    return out


class PlantedTranscoder(torch.nn.Module):
    """A ReLU transcoder with given weights (for planted circuits and tests)."""

    def __init__(
        self,
        W_enc: Float[Tensor, "d_in d_sae"],
        b_enc: Float[Tensor, " d_sae"],
        W_dec: Float[Tensor, "d_sae d_out"],
        b_dec: Float[Tensor, " d_out"] | None = None,
        W_skip: Float[Tensor, "d_in d_out"] | None = None,
    ) -> None:
        super().__init__()
        self.W_enc = torch.nn.Parameter(W_enc.clone().float())
        self.b_enc = torch.nn.Parameter(b_enc.clone().float())
        self.W_dec = torch.nn.Parameter(W_dec.clone().float())
        self.b_dec = torch.nn.Parameter(
            torch.zeros(W_dec.shape[1]) if b_dec is None else b_dec.clone().float()
        )
        self.W_skip = None if W_skip is None else torch.nn.Parameter(W_skip.clone().float())

    def encode(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_sae"]:
        return torch.relu(pre_activation(self, x))

    def forward(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_out"]:
        return decode(self, self.encode(x), x)


def check_transcoders(model, transcoders: dict[int, object]) -> dict[int, object]:
    """Validate ``{layer: transcoder}`` against ``model``; return it sorted by layer."""
    if not transcoders:
        raise TranscoderLoadError("no transcoders given: pass {layer: transcoder} for at least one MLP layer")
    d_model = model.cfg.d_model
    out = {}
    for layer in sorted(transcoders):
        tc = transcoders[layer]
        if not isinstance(layer, int) or not 0 <= layer < model.cfg.n_layers:
            raise TranscoderLoadError(f"transcoder layer {layer!r} is not a layer of this {model.cfg.n_layers}-layer model")
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            if not isinstance(getattr(tc, name, None), Tensor):
                raise TranscoderLoadError(f"the layer-{layer} transcoder has no tensor {name}; see TranscoderLike")
        if tc.W_enc.shape[0] != d_model or tc.W_dec.shape[1] != d_model:
            raise TranscoderLoadError(
                f"the layer-{layer} transcoder maps {tc.W_enc.shape[0]} -> {tc.W_dec.shape[1]} dims but the model's "
                f"MLP reads and writes d_model={d_model}: these transcoders were trained on another model"
            )
        out[layer] = tc
    return out


class _InterpTranscoder:
    """An :mod:`interp.transcoders` transcoder seen through :class:`TranscoderLike`:
    normalisation folded into the weights, ``W_skip`` as ``[d_in, d_out]``."""

    def __init__(self, tc) -> None:
        from interp.transcoders.formats import folded_copy

        self.inner = folded_copy(tc).requires_grad_(False)
        self.W_enc = self.inner.W_enc
        self.b_enc = self.inner.b_enc
        self.W_dec = self.inner.W_dec
        self.b_dec = self.inner.b_dec
        self.W_skip = self.inner.W_skip.T if self.inner.has_skip else None

    def encode(self, x: Float[Tensor, "*batch d_in"]) -> Float[Tensor, "*batch d_sae"]:
        flat = x.reshape(-1, x.shape[-1])
        return self.inner.activation(self.inner.pre_acts(flat)).reshape(*x.shape[:-1], -1)


def adapt(tc):
    """``tc`` as a :class:`TranscoderLike`: interp transcoders are folded and wrapped."""
    if hasattr(tc, "fold_normalisation") and hasattr(tc, "has_skip"):
        return _InterpTranscoder(tc)
    return tc


def _layer_from_dir(directory: Path) -> int:
    from interp.hooks import hook_name
    from interp.transcoders.formats import read_config

    meta = read_config(directory).get("metadata", {})
    layer = meta.get("hook_layer")
    if layer is None:
        raise TranscoderLoadError(f"{directory}/cfg.json names no hook_layer; cannot tell which MLP it replaces")
    expected = (hook_name("mlp_in", layer), hook_name("mlp_out", layer))
    found = (meta.get("hook_name"), meta.get("hook_name_out"))
    if found != expected:
        raise TranscoderLoadError(
            f"{directory} reads {found[0]!r} and writes {found[1]!r}; circuit tracing needs transcoders "
            f"from the MLP input to the MLP output ({expected[0]!r} -> {expected[1]!r})"
        )
    return int(layer)


def load_transcoders(path: str | Path, device: str = "cpu") -> dict[int, object]:
    """``{layer: transcoder}`` from a run directory of ``interp transcoder train`` (with
    ``layer_L/`` subdirectories), or from one saved transcoder directory."""
    path = Path(path)
    if not path.exists():
        raise TranscoderLoadError(
            f"no transcoders at {path}: train some with `interp transcoder train --out {path}` "
            "or pass the run directory it wrote"
        )
    from interp.errors import StoreError
    from interp.transcoders.formats import load

    dirs = [path] if (path / "cfg.json").is_file() else sorted(p for p in path.iterdir() if (p / "cfg.json").is_file())
    if not dirs:
        raise TranscoderLoadError(
            f"{path} holds no saved transcoder (no cfg.json in it or in its subdirectories); "
            "pass the --out directory of `interp transcoder train` after the run finished"
        )
    out = {}
    for d in dirs:
        try:
            out[_layer_from_dir(d)] = adapt(load(d, device=device))
        except StoreError as err:
            raise TranscoderLoadError(str(err)) from err
    return dict(sorted(out.items()))
