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
name and full config (``k`` for TopK), which :func:`load` uses to restore exactly.
TopK transcoders are written with ``architecture: "interp_topk_transcoder"`` (or
``interp_skip_topk_transcoder``), names SAELens does not know, so it refuses them instead
of silently running them with a ReLU.
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
_FROM_SAELENS = {
    "transcoder": "relu",
    "skip_transcoder": "skip",
    "jumprelu_transcoder": "jumprelu",
    "jumprelu_skip_transcoder": "skip_jumprelu",
}
_SAELENS_FORMAT_VERSION = "6.0.0"


def _saelens_version() -> str:
    try:
        from importlib.metadata import version

        return version("sae-lens")
    except Exception:  # noqa: BLE001 - sae-lens absent: write the format version we follow
        return _SAELENS_FORMAT_VERSION


def saelens_architecture(arch: str) -> str:
    return registry.get(arch).saelens or f"interp_{arch}_transcoder"


def save(tc: Transcoder, directory: str | Path, *, hook_name: str, hook_name_out: str, metadata: dict | None = None) -> Path:
    """Write ``tc`` (normalisation folded) to ``directory`` in SAELens' layout, atomically per file."""
    from safetensors.torch import save_file

    directory = Path(directory)
    folded = tc.folded()
    weights = {k: v.detach().float().cpu().contiguous() for k, v in _tensors_out(folded).items()}
    layer = _layer(hook_name)
    meta = {
        "sae_lens_version": _saelens_version(),
        "sae_lens_training_version": None,
        "hook_name": hook_name,
        "hook_name_out": hook_name_out,
        "hook_layer": layer,
        "hook_layer_out": _layer(hook_name_out),
        "hook_head_index": None,
        "prepend_bos": True,
        **(metadata or {}),
    }
    cfg = {
        "architecture": saelens_architecture(tc.arch),
        "d_in": tc.cfg.d_in,
        "d_sae": tc.cfg.d_sae,
        "d_out": tc.cfg.d_out,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": meta,
        "interp": {"architecture": tc.arch, "config": asdict(tc.cfg)},
    }
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_write(directory / WEIGHTS_FILE) as tmp:
        save_file(weights, str(tmp))
    atomic_write_text(directory / CFG_FILE, json.dumps(cfg, indent=2) + "\n")
    return directory


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


def load(directory: str | Path, device: str | torch.device = "cpu") -> Transcoder:
    """Load a transcoder saved by :func:`save`, or a SAELens (JumpReLU) ``transcoder`` / ``skip_transcoder``."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg = read_config(directory)
    if "interp" in cfg:
        arch = registry.get(cfg["interp"]["architecture"])
        arch_cfg = arch.config(**cfg["interp"]["config"])
    elif cfg.get("architecture") in _FROM_SAELENS:
        arch = registry.get(_FROM_SAELENS[cfg["architecture"]])
        arch_cfg = arch.config(d_in=cfg["d_in"], d_out=cfg["d_out"], d_sae=cfg["d_sae"])
    else:
        raise StoreError(
            f"{directory}: architecture {cfg.get('architecture')!r} is not one interp can load; "
            f"it loads its own files and SAELens {sorted(_FROM_SAELENS)}"
        )
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
    return tc.to(device).eval()


def from_saelens(sae) -> Transcoder:
    """Convert a loaded ``sae_lens`` Transcoder / SkipTranscoder (e.g. a pretrained one) to ours."""
    name = sae.cfg.architecture()
    if name not in _FROM_SAELENS:
        raise StoreError(f"SAELens architecture {name!r} has no interp equivalent; supported: {sorted(_FROM_SAELENS)}")
    if getattr(sae.cfg, "normalize_activations", "none") != "none":
        raise StoreError(f"SAELens transcoder with normalize_activations={sae.cfg.normalize_activations!r} is not supported")
    arch = registry.get(_FROM_SAELENS[name])
    tc = arch.transcoder(arch.config(d_in=sae.cfg.d_in, d_out=sae.cfg.d_out, d_sae=sae.cfg.d_sae))
    # interp's parameter names and layouts are SAELens' own (W_skip is [d_out, d_in] in both)
    _tensors_in(tc, {name: getattr(sae, name).detach().float().cpu() for name in _tensors_out(tc)})
    meta = getattr(sae.cfg, "metadata", None)
    tc.hook_name = getattr(meta, "hook_name", None)
    tc.hook_name_out = getattr(meta, "hook_name_out", None)
    return tc.to(sae.W_enc.device).eval()


def as_transcoder(obj) -> Transcoder:
    """``obj`` as an interp :class:`Transcoder`: an interp transcoder as it is, a SAELens
    transcoder converted by :func:`from_saelens` (the one place that knows SAELens' conventions)."""
    if isinstance(obj, Transcoder):
        return obj
    if type(obj).__module__.startswith("sae_lens"):
        return from_saelens(obj)
    raise TranscoderLoadError(
        f"{type(obj).__name__} is not a transcoder interp can use: pass an interp.transcoders.Transcoder "
        "(trained, loaded with interp.transcoders.load_run, or built with Transcoder.from_weights) or a SAELens transcoder"
    )


def load_pretrained(release: str, sae_id: str, device: str = "cpu") -> Transcoder:
    """A SAELens pretrained transcoder from the Hugging Face hub (needs the hub)."""
    from sae_lens import SAE

    return from_saelens(SAE.from_pretrained(release, sae_id, device="cpu")).to(device)
