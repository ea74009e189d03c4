"""Saving and loading transcoders in SAELens' on-disk layout.

A transcoder directory holds ``cfg.json`` and ``sae_weights.safetensors`` (``W_enc``
``[d_in, d_sae]``, ``b_enc``, ``W_dec`` ``[d_sae, d_out]``, ``b_dec``, and ``W_skip``
``[d_out, d_in]`` for skip transcoders), with the normalisation folded into the weights.
``cfg.json`` has the keys SAELens 6's ``TranscoderConfig`` reads (``d_in``, ``d_sae``,
``d_out``, ``architecture``, ``apply_b_dec_to_input: false``, ``normalize_activations:
"none"``, ``metadata`` with ``hook_name`` / ``hook_name_out`` and ``sae_lens_version``), so
``sae_lens.SAE.load_from_disk`` loads ReLU (``transcoder``), skip (``skip_transcoder``) and
JumpReLU (``jumprelu_transcoder``, ``jumprelu_skip_transcoder``; ``threshold`` stored as
SAELens names it) transcoders and computes the same outputs. An ``interp`` key records our architecture
name and full config (training settings included), which :func:`load` uses to restore exactly.

SAELens has no TopK transcoder: TopK transcoders are written with ``architecture:
"interp_topk_transcoder"`` (``interp_skip_topk_transcoder``) and ``k`` at the top level of
``cfg.json``, where SAELens reads a config's fields. :mod:`interp.transcoders.saelens`
registers SAELens classes under those names; until it is imported SAELens refuses these
files (``KeyError: 'interp_topk_transcoder'``) rather than running them with another
activation. Every architecture setting SAELens reads (:data:`SAELENS_SETTINGS`) is written
at the top level, and :func:`load` refuses a file whose top-level value disagrees with its
``interp`` record, so SAELens and interp never run one file with two different ``k``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from interp.errors import StoreError, TranscoderLoadError
from interp.io import atomic_write, atomic_write_text
from interp.transcoders import registry
from interp.transcoders.base import Transcoder

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
_SAELENS_FORMAT_VERSION = "6.0.0"
SAELENS_SETTINGS: tuple[str, ...] = ("k",)
"""Architecture settings SAELens reads from the top level of ``cfg.json`` (the fields of the
SAELens configs in :mod:`interp.transcoders.saelens`); :func:`save` writes them there."""
LOADING_NOTE = "import interp.transcoders.saelens before sae_lens.SAE.load_from_disk: it registers {architecture} with SAELens"


def _saelens_version() -> str:
    try:
        from importlib.metadata import version

        return version("sae-lens")
    except Exception:  # noqa: BLE001 - sae-lens absent: write the format version we follow
        return _SAELENS_FORMAT_VERSION


def saelens_architecture(arch: str) -> str:
    """The ``architecture`` SAELens knows interp's ``arch`` by (its own name, or one that
    :mod:`interp.transcoders.saelens` registers)."""
    return registry.get(arch).saelens or f"interp_{arch}_transcoder"


def interp_architecture(saelens_name: str) -> str | None:
    """interp's architecture written as SAELens' ``saelens_name``, or None when there is none."""
    return {saelens_architecture(name): name for name in registry.names()}.get(saelens_name)


def trained_on(module) -> dict:
    """``{"model_fingerprint": ...}`` of the model ``module`` was trained on, as its files record
    it (empty when unknown), so exporting or re-saving it keeps the record."""
    fp = getattr(module, "model_fingerprint", None) or {}
    fp = fp.get("trained_on", {}) if fp.get("forced") else fp
    return {"model_fingerprint": fp} if fp else {}


def saelens_config(tc: Transcoder, *, hook_name: str, hook_name_out: str, metadata: dict | None = None) -> dict:
    """``cfg.json`` of ``tc`` as SAELens reads it (top-level fields, ``metadata``), plus the
    ``interp`` record of the architecture and its full config."""
    architecture = saelens_architecture(tc.arch)
    meta = {
        "sae_lens_version": _saelens_version(),
        "sae_lens_training_version": None,
        "hook_name": hook_name,
        "hook_name_out": hook_name_out,
        "hook_layer": _layer(hook_name),
        "hook_layer_out": _layer(hook_name_out),
        "hook_head_index": None,
        "prepend_bos": True,
        **trained_on(tc),
        **(metadata or {}),
    }
    if registry.get(tc.arch).saelens is None:
        meta["loading"] = LOADING_NOTE.format(architecture=architecture)
    settings = asdict(tc.cfg)
    return {
        "architecture": architecture,
        "d_in": tc.cfg.d_in,
        "d_sae": tc.cfg.d_sae,
        "d_out": tc.cfg.d_out,
        **{name: settings[name] for name in SAELENS_SETTINGS if name in settings},
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": meta,
        "interp": {"architecture": tc.arch, "config": settings},
    }


def saelens_tensors(tc: Transcoder) -> dict[str, torch.Tensor]:
    """The tensors of ``tc`` as SAELens names and lays them out (normalisation folded, float32, CPU)."""
    return {k: v.detach().float().cpu().contiguous() for k, v in _tensors_out(tc.folded()).items()}


def save(tc: Transcoder, directory: str | Path, *, hook_name: str, hook_name_out: str, metadata: dict | None = None) -> Path:
    """Write ``tc`` (normalisation folded) to ``directory`` in SAELens' layout, atomically per file."""
    from safetensors.torch import save_file

    directory = Path(directory)
    weights = saelens_tensors(tc)
    cfg = saelens_config(tc, hook_name=hook_name, hook_name_out=hook_name_out, metadata=metadata)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_write(directory / WEIGHTS_FILE) as tmp:
        save_file(weights, str(tmp))
    atomic_write_text(directory / CFG_FILE, json.dumps(cfg, indent=2) + "\n")
    return directory


def save_module(module, directory: str | Path, *, metadata: dict | None = None) -> Path:
    """Write a trained module where a run keeps it: a per-layer transcoder with :func:`save`
    (its hooks from :meth:`Transcoder.wire`), a cross-layer transcoder with
    :func:`interp.transcoders.clt_format.save_clt`."""
    if module.cross_layer:
        from interp.transcoders.clt_format import save_clt

        return save_clt(module, directory, metadata=metadata)
    return save(module, directory, hook_name=module.hook_name, hook_name_out=module.hook_name_out, metadata=metadata)


def _tensors_out(tc: Transcoder) -> dict[str, torch.Tensor]:
    """The tensors as SAELens names them (our parameter names are SAELens' names)."""
    return dict(tc.named_parameters())


@torch.no_grad()
def _tensors_in(tc: Transcoder, tensors: dict[str, torch.Tensor]) -> None:
    for name, value in tensors.items():
        getattr(tc, name).copy_(value)


def _layer(name: str) -> int | None:
    from interp.hooks import layer_of

    return layer_of(name)


def read_config(directory: str | Path) -> dict:
    path = Path(directory) / CFG_FILE
    if not path.is_file():
        raise StoreError(f"{directory} holds no {CFG_FILE}; it is not a saved transcoder (expected {CFG_FILE} and {WEIGHTS_FILE})")
    return json.loads(path.read_text())


def _architecture_and_config(cfg: dict, where: str):
    """interp's architecture and config for a ``cfg.json``: its ``interp`` record when it has
    one (checked against the top-level fields SAELens reads), else SAELens' top-level fields."""
    if "interp" in cfg:
        arch = registry.get(cfg["interp"]["architecture"])
        arch_cfg = arch.config(**cfg["interp"]["config"])
        for name in ("d_in", "d_sae", "d_out", *SAELENS_SETTINGS):
            if name in cfg and hasattr(arch_cfg, name) and cfg[name] != getattr(arch_cfg, name):
                raise StoreError(
                    f"{where}/{CFG_FILE} says {name}={cfg[name]!r} at its top level (what SAELens runs) but "
                    f"{name}={getattr(arch_cfg, name)!r} in its interp record; the file was edited by hand: fix one of them"
                )
        return arch, arch_cfg
    name = interp_architecture(cfg.get("architecture", ""))
    if name is None:
        known = sorted(saelens_architecture(n) for n in registry.names())
        raise StoreError(f"{where}: architecture {cfg.get('architecture')!r} is not one interp can load; it loads {known}")
    arch = registry.get(name)
    settings = {f.name for f in arch.settings()} & set(SAELENS_SETTINGS)
    missing = sorted(s for s in settings if cfg.get(s) is None)
    if missing:
        raise StoreError(f"{where}/{CFG_FILE} is a {cfg['architecture']} without {', '.join(missing)} at its top level")
    return arch, arch.config(d_in=cfg["d_in"], d_out=cfg["d_out"], d_sae=cfg["d_sae"], **{s: cfg[s] for s in settings})


def load(directory: str | Path, device: str | torch.device = "cpu") -> Transcoder:
    """Load a transcoder saved by :func:`save`, or one SAELens saved (``transcoder``,
    ``skip_transcoder``, their JumpReLU variants, and interp's TopK ones)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg = read_config(directory)
    arch, arch_cfg = _architecture_and_config(cfg, str(directory))
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise StoreError(f"{directory} has {CFG_FILE} but no {WEIGHTS_FILE}; the save was interrupted or files were moved")
    tc = arch.transcoder(arch_cfg)
    state = load_file(str(weights_path))
    expected = set(_tensors_out(tc))
    if set(state) != expected:
        raise StoreError(f"{weights_path} holds tensors {sorted(state)}, expected {sorted(expected)} for {arch.name}")
    _tensors_in(tc, state)
    meta = cfg.get("metadata", {})
    tc.hook_name, tc.hook_name_out = meta.get("hook_name"), meta.get("hook_name_out")
    tc.model_fingerprint = meta.get("model_fingerprint") or {}  # {}: files that record none
    return tc.to(device).eval()


def from_saelens(sae) -> Transcoder:
    """Convert a loaded ``sae_lens`` transcoder (e.g. a pretrained one, or one of
    :mod:`interp.transcoders.saelens`' TopK classes) to ours."""
    name = sae.cfg.architecture()
    interp_name = interp_architecture(name)
    if interp_name is None:
        known = sorted(saelens_architecture(n) for n in registry.names())
        raise StoreError(f"SAELens architecture {name!r} has no interp equivalent; supported: {known}")
    if getattr(sae.cfg, "normalize_activations", "none") != "none":
        raise StoreError(f"SAELens transcoder with normalize_activations={sae.cfg.normalize_activations!r} is not supported")
    arch = registry.get(interp_name)
    settings = {s: getattr(sae.cfg, s) for s in SAELENS_SETTINGS if s in {f.name for f in arch.settings()}}
    tc = arch.transcoder(arch.config(d_in=sae.cfg.d_in, d_out=sae.cfg.d_out, d_sae=sae.cfg.d_sae, **settings))
    # interp's parameter names and layouts are SAELens' own (W_skip is [d_out, d_in] in both)
    _tensors_in(tc, {name: getattr(sae, name).detach().float().cpu() for name in _tensors_out(tc)})
    meta = getattr(sae.cfg, "metadata", None)
    tc.hook_name = getattr(meta, "hook_name", None)
    tc.hook_name_out = getattr(meta, "hook_name_out", None)
    tc.model_fingerprint = getattr(meta, "model_fingerprint", None) or {}  # {}: files that record none
    return tc.to(sae.W_enc.device).eval()


def as_transcoder(obj) -> Transcoder:
    """``obj`` as an interp :class:`Transcoder`: an interp transcoder as it is, a SAELens
    transcoder converted by :func:`from_saelens` (the one place that knows SAELens' conventions)."""
    if isinstance(obj, Transcoder):
        return obj
    if any(c.__module__.startswith("sae_lens") for c in type(obj).__mro__):
        return from_saelens(obj)
    raise TranscoderLoadError(
        f"{type(obj).__name__} is not a transcoder interp can use: pass an interp.transcoders.Transcoder "
        "(trained, loaded with interp.transcoders.load_run, or built with Transcoder.from_weights) or a SAELens transcoder"
    )


def load_pretrained(release: str, sae_id: str, device: str = "cpu") -> Transcoder:
    """A SAELens pretrained transcoder from the Hugging Face hub (needs the hub); interp's
    TopK transcoders uploaded there load too."""
    from sae_lens import SAE

    import interp.transcoders.saelens  # noqa: F401 - registers interp's TopK transcoders with SAELens

    return from_saelens(SAE.from_pretrained(release, sae_id, device="cpu")).to(device)
