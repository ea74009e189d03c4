"""``interp transcoder export`` / ``import``: a run's transcoders in another library's layout, and back.

- ``saelens``: one folder per layer (``layer_L``) in SAELens' layout, the one interp's runs
  already use (:mod:`interp.transcoders.formats`); exporting rewrites files an older interp
  saved so every field SAELens reads is at the top of ``cfg.json``. ``sae_lens.SAE.load_from_disk``
  loads each folder (TopK ones once ``interp.transcoders.saelens`` is imported).
- ``sparsify``: one folder per hookpoint (``blocks.L.mlp``) that sparsify's own
  ``SparseCoder.load_many(DIR, local=True)`` loads (:mod:`interp.transcoders.sparsify`).

Importing reads such folders (also ones SAELens or sparsify wrote) into a folder of interp
transcoders, one ``layer_L`` per layer, which :func:`interp.transcoders.load_run` loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, get_args

from simple_parsing import field as sp_field

from interp.errors import ConfigError, TranscoderLoadError
from interp.io import OutputKind, claim_output
from interp.results import Result
from interp.transcoders import formats
from interp.transcoders.base import Transcoder
from interp.transcoders.data import layer_key

Format = Literal["saelens", "sparsify"]


@dataclass
class ExportConfig:
    """Write a run's transcoders in SAELens' or sparsify's layout, for that library's own loader."""

    run: str = sp_field(positional=True)
    """Run directory written by `interp transcoder train` (or a folder of saved transcoders)."""
    format: Format
    """saelens: OUT/layer_L for sae_lens.SAE.load_from_disk; sparsify: OUT/blocks.L.mlp for sparsify's SparseCoder.load_many(OUT, local=True)."""
    out: str
    """Folder to write (new or empty)."""
    overwrite: bool = False
    """Replace the transcoders an earlier export or import wrote into --out."""

    def __post_init__(self) -> None:
        _check(self.format, self.out)


@dataclass
class ImportConfig:
    """Read transcoders SAELens or sparsify saved (or interp exported) into a folder of interp transcoders."""

    source: str = sp_field(positional=True)
    """A folder of transcoders in the --format's layout (one per layer), or one transcoder's folder."""
    format: Format
    """saelens: folders with cfg.json + sae_weights.safetensors; sparsify: folders blocks.L.mlp with cfg.json + sae.safetensors."""
    out: str
    """Folder to write OUT/layer_L into (new or empty); interp.transcoders.load_run(OUT) loads it."""
    overwrite: bool = False
    """Replace the transcoders an earlier export or import wrote into --out."""

    def __post_init__(self) -> None:
        _check(self.format, self.out)


def _check(fmt: str, out: str) -> None:
    if fmt not in get_args(Format):
        raise ConfigError(f"--format must be one of {', '.join(get_args(Format))}, got {fmt!r}")
    if not out:
        raise ConfigError("--out must name the folder to write, got an empty string")


@dataclass
class InteropResult(Result):
    """What an export or import wrote."""

    stem: ClassVar[str] = "interop"
    title: ClassVar[str] = "Transcoders converted"

    direction: Literal["export", "import"]
    format: str
    source: str
    out: str
    folders: dict[int, str]
    """Layer -> the folder written for it."""
    architectures: dict[int, str]
    """Layer -> interp architecture."""

    def summary(self) -> str:
        verb = "exported" if self.direction == "export" else "imported"
        where = "for" if self.direction == "export" else "from"
        lines = [f"{verb} {len(self.folders)} transcoder(s) {where} {self.format}: {self.source} -> {self.out}"]
        lines += [f"  layer {layer}: {self.architectures[layer]:14s} {self.folders[layer]}" for layer in sorted(self.folders)]
        if self.direction == "export":
            lines.append(_HOW_TO_LOAD[self.format].format(out=self.out))
        return "\n".join(lines)


_HOW_TO_LOAD = {
    "saelens": "load with: sae_lens.SAE.load_from_disk('{out}/layer_L') (TopK: import interp.transcoders.saelens first)",
    "sparsify": "load with: sparsify.SparseCoder.load_many('{out}', local=True)",
}


FOLDER_KIND = OutputKind("transcoder-folder", "a folder of transcoders", ("layer_*", "blocks.*"))
"""The output kind of ``interp transcoder export`` and ``import`` (:func:`interp.io.claim_output`)."""


def export(cfg: ExportConfig) -> InteropResult:
    """Write the transcoders of ``cfg.run`` in ``cfg.format``'s layout into ``cfg.out``."""
    from interp.transcoders.loading import load_run

    transcoders = _per_layer(load_run(cfg.run), cfg.run)
    with claim_output(cfg.out, FOLDER_KIND, overwrite=cfg.overwrite) as out:
        if cfg.format == "sparsify":
            from interp.transcoders import sparsify

            folders = sparsify.save_run(transcoders, out)
        else:
            folders = {layer: _save_saelens(tc, out / layer_key(layer)) for layer, tc in transcoders.items()}
    return _result("export", cfg, transcoders, folders)


def import_transcoders(cfg: ImportConfig) -> InteropResult:
    """Read the transcoders in ``cfg.source`` (``cfg.format``'s layout) into ``cfg.out/layer_L``."""
    if cfg.format == "sparsify":
        from interp.transcoders import sparsify

        transcoders = sparsify.load_run(cfg.source)
    else:
        from interp.transcoders.loading import load_run

        transcoders = _per_layer(load_run(cfg.source), cfg.source)
    with claim_output(cfg.out, FOLDER_KIND, overwrite=cfg.overwrite) as out:
        folders = {layer: _save_saelens(tc, out / layer_key(layer)) for layer, tc in transcoders.items()}
    return _result("import", cfg, transcoders, folders)


def _per_layer(transcoders, where: str) -> dict[int, Transcoder]:
    """The per-layer transcoders ``load_run`` gave; a cross-layer transcoder is refused, saying why."""
    if not isinstance(transcoders, dict):
        raise TranscoderLoadError(
            f"{where} holds a cross-layer transcoder; SAELens and sparsify have no layout for one. It is saved in "
            "circuit-tracer's CLT layout already (the run's clt/ folder), which circuit-tracer's load_clt reads"
        )
    return transcoders


def _save_saelens(tc: Transcoder, directory: Path) -> Path:
    return formats.save(tc, directory, hook_name=tc.hook_name, hook_name_out=tc.hook_name_out)


def _result(direction, cfg, transcoders: dict[int, Transcoder], folders: dict[int, Path]) -> InteropResult:
    source = cfg.run if direction == "export" else cfg.source
    return InteropResult(
        direction=direction,
        format=cfg.format,
        source=str(source),
        out=str(cfg.out),
        folders={layer: str(path) for layer, path in folders.items()},
        architectures={layer: tc.arch for layer, tc in transcoders.items()},
    )


__all__ = ["ExportConfig", "ImportConfig", "InteropResult", "export", "import_transcoders"]
