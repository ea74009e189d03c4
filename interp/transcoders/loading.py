"""Loading trained runs, and fitting transcoders to the model they are used with.

:func:`load_run` is the one loader of a trained run: evaluation, circuits, units and the
CLI all call it, and all get ``{layer: Transcoder}`` with int keys. :func:`for_model` is the
one check that transcoders fit a model (layer in range, widths equal to the model's, MLP
input to MLP output), converting SAELens transcoders on the way (:func:`formats.as_transcoder`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from interp.errors import StoreError, TranscoderLoadError
from interp.transcoders import formats
from interp.transcoders.base import Transcoder
from interp.transcoders.data import layer_hooks, layer_key


def load_run(path: str | Path, device: str = "cpu") -> dict[int, Transcoder]:
    """``{layer: transcoder}`` of a finished ``interp transcoder train`` run directory, or of
    one saved transcoder directory (``cfg.json`` + weights, e.g. a SAELens transcoder).

    Each transcoder knows the hooks it reads and writes (``hook_name``, ``hook_name_out``).
    """
    from interp.transcoders.training import RUN_FILE, TrainResult

    path = Path(path)
    if not path.exists():
        raise TranscoderLoadError(
            f"no transcoders at {path}: train some with `interp transcoder train --out {path}` "
            "or pass the run directory it wrote"
        )
    if (path / formats.CFG_FILE).is_file():
        tc = formats.load(path, device=device)
        return {_mlp_layer(tc, path): tc}
    if not (path / RUN_FILE).is_file():
        partial = sorted(p.name for p in path.iterdir() if (p / formats.CFG_FILE).is_file())
        hint = (f" It holds {', '.join(partial)} but no {RUN_FILE}: the run did not finish; continue it with "
                "`interp transcoder train --resume true --out DIR` (same settings)") if partial else ""
        raise TranscoderLoadError(
            f"{path} is not a finished transcoder run (no {RUN_FILE}) nor a saved transcoder (no {formats.CFG_FILE}).{hint}"
        )
    result = TrainResult.load(path)
    out = {}
    for layer in result.layers:
        try:
            tc = formats.load(path / layer_key(layer), device=device)
        except StoreError as err:
            raise TranscoderLoadError(f"run {path}, layer {layer}: {err}") from err
        if _mlp_layer(tc, path / layer_key(layer)) != layer:
            raise TranscoderLoadError(f"{path / layer_key(layer)} holds the transcoder of another layer ({tc.hook_name})")
        out[layer] = tc
    return out


def _mlp_layer(tc: Transcoder, where: Path) -> int:
    """The layer whose MLP ``tc`` replaces, from its hook names (checked to be MLP input -> output)."""
    from interp.hooks import layer_of

    layer = layer_of(tc.hook_name or "")
    if layer is None:
        raise TranscoderLoadError(f"{where}/cfg.json names no hook_name in a block; cannot tell which MLP it replaces")
    expected = layer_hooks(layer)
    if (tc.hook_name, tc.hook_name_out) != expected:
        raise TranscoderLoadError(
            f"{where} reads {tc.hook_name!r} and writes {tc.hook_name_out!r}; interp uses transcoders "
            f"from the MLP input to the MLP output ({expected[0]!r} -> {expected[1]!r})"
        )
    return layer


def for_model(model, transcoders: Mapping[int, object], *, fold: bool = True) -> dict[int, Transcoder]:
    """Check ``{layer: transcoder}`` against ``model`` and return it sorted by layer, every
    transcoder an interp :class:`Transcoder` (SAELens ones converted), folded when ``fold``
    (frozen copies whose weights act on raw activations), on the model's device."""
    if not transcoders:
        raise TranscoderLoadError("no transcoders given: pass {layer: transcoder} for at least one MLP layer")
    n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
    out = {}
    for layer in sorted(transcoders):
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
            raise TranscoderLoadError(f"transcoder layer {layer!r} is not a layer of this {n_layers}-layer model")
        tc = formats.as_transcoder(transcoders[layer])
        if tc.d_in != d_model or tc.d_out != d_model:
            raise TranscoderLoadError(
                f"the layer-{layer} transcoder maps {tc.d_in} -> {tc.d_out} dims but the model's MLP reads and "
                f"writes d_model={d_model}: these transcoders were trained on another model"
            )
        if tc.hook_name is not None and tc.hook_name != layer_hooks(layer)[0]:
            raise TranscoderLoadError(
                f"the transcoder given for layer {layer} was trained on {tc.hook_name!r}, not on layer {layer}'s MLP input"
            )
        tc = tc.folded() if fold else tc
        out[layer] = tc.to(model.cfg.device)
    return out


__all__ = ["for_model", "load_run"]
