"""Loading trained runs, and fitting transcoders to the model they are used with.

:func:`load_run` is the one loader of a trained run: evaluation, circuits, units and the
CLI all call it. A run of per-layer transcoders gives ``{layer: Transcoder}`` with int keys; a
cross-layer transcoder run (or a CLT directory in circuit-tracer's layout) gives the one
:class:`~interp.transcoders.clt.CrossLayerTranscoder`, which knows its own layers. :func:`for_model`
is the one check that transcoders fit a model (layer in range, widths equal to the model's, the
hooks they read and write), converting SAELens transcoders on the way
(:func:`formats.as_transcoder`); it refuses a CLT unless the caller says it handles one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from interp.errors import ConfigError, StoreError, TranscoderLoadError
from interp.hooks import is_post_norm, mlp_input
from interp.io import require_complete
from interp.transcoders import clt_format, formats, registry
from interp.transcoders.base import Transcoder, TranscoderModule
from interp.transcoders.clt import CrossLayerTranscoder
from interp.transcoders.data import CLT_KEY, check_clt_input, layer_hooks, layer_key, mlp_input_hooks

Run = dict[int, Transcoder] | CrossLayerTranscoder
"""What :func:`load_run` returns: per-layer transcoders by layer, or one cross-layer transcoder."""


def load_run(path: str | Path, device: str = "cpu", *, lazy_decoder: bool = False) -> Run:
    """The transcoders of a finished ``interp transcoder train`` run directory, of one saved
    transcoder directory (``cfg.json`` + weights, e.g. a SAELens transcoder), of a folder of
    those, or of a cross-layer transcoder directory (circuit-tracer's layout).

    Per-layer transcoders come as ``{layer: transcoder}``, each knowing the hooks it reads and
    writes (``hook_name``, ``hook_name_out``). A cross-layer transcoder comes as itself, a
    :class:`~interp.transcoders.clt.CrossLayerTranscoder` (its ``layers``, ``hook_names_in`` and
    ``hook_names_out`` say where it sits); ``lazy_decoder`` keeps its decoder on disk.
    """
    from interp.transcoders.training import CHECKPOINT_DIR, RUN_FILE, TrainResult

    path = Path(path)
    if not path.exists():
        raise TranscoderLoadError(
            f"no transcoders at {path}: train some with `interp transcoder train --out {path}` "
            "or pass the run directory it wrote"
        )
    try:
        require_complete(path)
    except StoreError as err:
        raise TranscoderLoadError(str(err)) from err
    if clt_format.is_clt_dir(path):
        return _load_clt(path, device, lazy_decoder)
    if (path / formats.CFG_FILE).is_file():
        tc = _load_one(path, device)
        return {_mlp_layer(tc, path): tc}
    if not (path / RUN_FILE).is_file():
        saved = sorted(p for p in path.iterdir() if (p / formats.CFG_FILE).is_file())
        if (path / CHECKPOINT_DIR).is_dir():
            raise TranscoderLoadError(
                f"{path} is an unfinished transcoder run (a checkpoint but no {RUN_FILE}); continue it with "
                f"`interp transcoder train --resume true --out {path}` (same settings) before using it"
            )
        if not saved:
            raise TranscoderLoadError(
                f"{path} is not a transcoder run (no {RUN_FILE}), a saved transcoder (no {formats.CFG_FILE}), "
                "nor a folder of saved transcoders"
            )
        out: dict[int, Transcoder] = {}
        for directory in saved:  # a folder of saved transcoders, one per layer (e.g. SAELens files)
            tc = _load_one(directory, device)
            layer = _mlp_layer(tc, directory)
            if layer in out:
                raise TranscoderLoadError(f"{path} holds two transcoders for layer {layer}; keep one per layer")
            out[layer] = tc
        return dict(sorted(out.items()))
    result = TrainResult.load(path)
    if registry.get(result.arch).cross_layer:
        clt = _load_clt(path / CLT_KEY, device, lazy_decoder)
        if clt.layers != list(result.layers):
            raise TranscoderLoadError(f"{path / CLT_KEY} covers layers {clt.layers}, the run says {result.layers}")
        return clt
    out = {}
    for layer in result.layers:
        tc = _load_one(path / layer_key(layer), device)
        if _mlp_layer(tc, path / layer_key(layer)) != layer:
            raise TranscoderLoadError(f"{path / layer_key(layer)} holds the transcoder of another layer ({tc.hook_name})")
        out[layer] = tc
    return out


def _load_clt(directory: Path, device: str, lazy_decoder: bool) -> CrossLayerTranscoder:
    try:
        return clt_format.load_clt(directory, device=device, lazy_decoder=lazy_decoder)
    except StoreError as err:
        raise TranscoderLoadError(str(err)) from err


def _load_one(directory: Path, device: str) -> Transcoder:
    try:
        return formats.load(directory, device=device)
    except StoreError as err:
        raise TranscoderLoadError(str(err)) from err


def _mlp_layer(tc: Transcoder, where: Path) -> int:
    """The layer whose MLP ``tc`` replaces, from its hook names (checked to be MLP input -> output)."""
    from interp.hooks import layer_of

    layer = layer_of(tc.hook_name or "")
    if layer is None:
        raise TranscoderLoadError(f"{where}/cfg.json names no hook_name in a block; cannot tell which MLP it replaces")
    inputs, output = mlp_input_hooks(layer), layer_hooks(layer)[1]
    if tc.hook_name not in inputs or tc.hook_name_out != output:
        raise TranscoderLoadError(
            f"{where} reads {tc.hook_name!r} and writes {tc.hook_name_out!r}; interp uses transcoders "
            f"from the MLP input ({' or '.join(map(repr, inputs))}, by architecture) to the MLP output ({output!r})"
        )
    return layer


_POST_NORM_NOTE = " (this model's blocks are post-norm: the MLP reads the residual stream itself, and ln2 normalises its output)"


def check_trained_on(model, transcoders: Mapping[int, object] | CrossLayerTranscoder, *, force: bool = False) -> dict | None:
    """Check that ``transcoders`` were trained on ``model`` (:func:`interp.models.check_fingerprint`
    against the fingerprint their files record; transcoders built in memory record none and are
    not checked) and return None, or, when ``force`` lets transcoders of another model through,
    the record ``{"forced": True, "trained_on": ..., "used_on": ...}`` to keep in the output.
    The transcoders are marked with that record (``model_fingerprint``), so later checks on this
    model pass and return it again.

    Raises:
        TranscoderLoadError: they were trained on another model (naming both), and not ``force``.
    """
    from interp.models.fingerprint import check_fingerprint, fingerprint

    modules = [transcoders] if isinstance(transcoders, CrossLayerTranscoder) else list(transcoders.values())
    # None: built in memory (nothing to check); {}: loaded from files that record no fingerprint
    fingerprints = (getattr(m, "model_fingerprint", None) for m in modules)
    records = {json.dumps(r, sort_keys=True): r for r in fingerprints if r is not None}
    current, note = None, None
    for record in records.values():
        if current is None and record:
            current = fingerprint(model)
        if record and record.get("forced"):
            if record["used_on"].get("weights") == current["weights"]:
                note = record
                continue
            record = record["trained_on"]
        note = check_fingerprint(record, model, what="these transcoders", force=force, current=current) or note
    if note is not None:
        for module in modules:
            if isinstance(module, TranscoderModule):
                module.model_fingerprint = note
    return note


def for_model(model, transcoders: Mapping[int, object] | CrossLayerTranscoder, *, fold: bool = True,
              cross_layer: bool = False, force: bool = False) -> Run:
    """Check ``{layer: transcoder}`` against ``model`` and return it sorted by layer, every
    transcoder an interp :class:`Transcoder` (SAELens ones converted), folded when ``fold``
    (frozen copies whose weights act on raw activations), on the model's device.

    A cross-layer transcoder is checked and returned the same way (one module) when the caller
    passes ``cross_layer=True`` (it handles one); otherwise it is refused with a clear error.
    Transcoders whose files record another model's fingerprint are refused unless ``force``
    (:func:`check_trained_on`).
    """
    check_trained_on(model, transcoders, force=force)
    if isinstance(transcoders, CrossLayerTranscoder):
        if not cross_layer:
            raise TranscoderLoadError(
                "these are a cross-layer transcoder, and this analysis takes per-layer transcoders ({layer: Transcoder}); "
                "CLTs work with interp.transcoders.evaluate, splice and interp.circuits (attribute, trace, virtual_weights)"
            )
        return _clt_for_model(model, transcoders, fold)
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
        expected = mlp_input(model, layer)
        if tc.hook_name is not None and tc.hook_name != expected:
            raise TranscoderLoadError(
                f"the transcoder given for layer {layer} was trained on {tc.hook_name!r}, not on layer {layer}'s MLP input "
                f"{expected!r}{_POST_NORM_NOTE if is_post_norm(model.cfg.original_architecture) else ''}"
            )
        tc = tc.folded() if fold else tc
        out[layer] = tc.to(model.cfg.device)
    return out


def _clt_for_model(model, clt: CrossLayerTranscoder, fold: bool) -> CrossLayerTranscoder:
    from interp.hooks import mlp_input_site, validate

    n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
    if clt.layers[-1] >= n_layers:
        raise TranscoderLoadError(f"the CLT covers layers {clt.layers}, beyond this {n_layers}-layer model")
    if clt.d_in != d_model or clt.d_out != d_model:
        raise TranscoderLoadError(
            f"the CLT maps {clt.d_in} -> {clt.d_out} dims but the model's residual stream and MLPs have "
            f"d_model={d_model}: it was trained on another model"
        )
    validate(model, clt.hook_names_in + clt.hook_names_out)
    try:
        check_clt_input(clt.cfg.input_site, mlp_input_site(model.cfg.original_architecture))
    except ConfigError as err:
        raise TranscoderLoadError(f"this CLT cannot run on the model: {err}") from err
    clt = clt.folded() if fold else clt
    return clt.to(model.cfg.device)


__all__ = ["Run", "check_trained_on", "for_model", "load_run"]
