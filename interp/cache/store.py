"""The on-disk activation store: safetensors shards plus a JSON manifest.

Layout of a store directory::

    manifest.json              model, hooks, widths, dtype, ctx_len, shards with XXH3-64 checksums
    shard-00000.safetensors    one tensor per hook [rows, d] (storage dtype) + "tokens" [n_ctx, ctx] int32
    shard-00001.safetensors    ...

Shards are ordinary safetensors files (any safetensors reader opens them). A shard is
written to a temporary file and renamed into place; the manifest is rewritten (also
atomically) only after its shard is complete, so the manifest always describes whole,
checksummed shards. Files that the manifest does not list (a shard renamed just before a
kill) are ignored and overwritten on resume.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import xxhash
from jaxtyping import Int
from torch import Tensor

from interp.cache.source import (
    TOKEN_KEY,
    ActivationBatch,
    block_meta,
    generator_for,
    mix,
    rows_for_memory,
    to_batch,
)
from interp.errors import ConfigError, StoreError, UnknownHookError
from interp.io import OutputKind, atomic_write, atomic_write_text, require_complete

FORMAT = "interp-activation-store"
VERSION = 1
MANIFEST = "manifest.json"
StorageDtype = Literal["float32", "bfloat16", "float16"]
STORAGE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_SAFETENSORS_CODES = {
    torch.float32: "F32",
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.int32: "I32",
    torch.int64: "I64",
}
_READ_CHUNK = 16 * 2**20
STORE = OutputKind(
    "activation-store", "an activation store", ("manifest.json", "shard-*.safetensors"),
    resume="`interp cache run --out {dir} --resume true` (same model, hooks, data and settings)",
)
"""The output kind of ``interp cache run`` (:func:`interp.io.claim_output`)."""


def shard_file(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


def write_shard(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> tuple[int, str]:
    """Write CPU tensors as a safetensors file, atomically; return (bytes, XXH3-64 hex digest).

    The format is written directly (8-byte header length, JSON header, raw data) so the
    checksum is computed while writing and large writes release the GIL.
    """
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _SAFETENSORS_CODES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    prefix = struct.pack("<Q", len(encoded)) + encoded
    digest = xxhash.xxh3_64(prefix)
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        handle.write(prefix)
        for tensor in tensors.values():
            data = memoryview(tensor.contiguous().view(torch.uint8).numpy()).cast("B")
            digest.update(data)
            handle.write(data)
    return len(prefix) + offset, digest.hexdigest()


def file_checksum(path: Path) -> str:
    """XXH3-64 of a file's bytes (fast: ~10 GB/s, so verifying costs about a disk read)."""
    digest = xxhash.xxh3_64()
    with open(path, "rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not file.is_file():
        what = "does not exist" if not path.exists() else "has no manifest.json"
        raise StoreError(f"{path} {what}: it is not an activation store (write one with `interp cache run`)")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise StoreError(f"{file} is not valid JSON ({err}); the store's manifest is damaged") from err
    if manifest.get("format") != FORMAT:
        raise StoreError(f"{file} is not an interp activation store manifest (format {manifest.get('format')!r})")
    if manifest.get("version") != VERSION:
        raise StoreError(f"{file} has store version {manifest.get('version')}; this interp reads version {VERSION}")
    return manifest


def write_manifest(path: Path, manifest: dict) -> None:
    atomic_write_text(path / MANIFEST, json.dumps(manifest, indent=1) + "\n")


@dataclass(frozen=True)
class Shard:
    """One shard as the manifest lists it."""

    index: int
    file: str
    start_context: int
    n_contexts: int
    bytes: int
    checksum: str


class ActivationStore:
    """A sharded on-disk store of activations; an :class:`~interp.cache.source.ActivationSource`.

    Open one with :meth:`open`. ``batches`` reads shards in an order drawn from
    ``(seed, epoch)`` (the next shard is read in a background thread) and shuffles rows
    across shards with a mixing buffer of ``buffer_mb`` megabytes; every row is yielded
    exactly once per epoch.
    """

    def __init__(self, path: Path, manifest: dict, hook_names: list[str], buffer_mb: float) -> None:
        self.path = path
        self.manifest = manifest
        self.hook_names = hook_names
        self.buffer_mb = buffer_mb
        self.shards = [Shard(index=i, **entry) for i, entry in enumerate(manifest["shards"])]
        self.dtype: torch.dtype = STORAGE_DTYPES[manifest["dtype"]]
        self.ctx_len: int = manifest["ctx_len"]

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        hooks: Sequence[str] | None = None,
        verify: Literal["full", "sizes"] = "full",
        allow_incomplete: bool = False,
        buffer_mb: float = 512.0,
    ) -> ActivationStore:
        """Open a store written by :func:`~interp.cache.writer.cache_activations`.

        Args:
            path: the store directory.
            hooks: read only these hooks (default: all in the store).
            verify: ``"full"`` checks every shard's size and checksum against the manifest;
                ``"sizes"`` checks only that each shard exists with the right size (fast
                for very large stores; run :meth:`verify` later).
            allow_incomplete: open a store whose run has not finished (its complete
                shards only); by default that is an error that says to resume the run.
            buffer_mb: size of the mixing buffer that ``batches`` shuffles rows in.

        Raises:
            StoreError: no store there, a missing or damaged shard, a checksum mismatch,
                or an incomplete run.
            UnknownHookError: a name in ``hooks`` the store does not hold.
        """
        path = Path(path)
        manifest = read_manifest(path)
        if not manifest["complete"] and not allow_incomplete:
            raise StoreError(
                f"{path} is incomplete: its run stopped after {len(manifest['shards'])} shards "
                f"({manifest['n_tokens']:,} tokens). Finish it with `interp cache run ... --resume` "
                "(or cache_activations(..., CacheConfig(resume=True))), or pass allow_incomplete=True "
                "to read the complete shards."
            )
        if not allow_incomplete:
            require_complete(path, STORE)
        names = list(manifest["hook_names"])
        if hooks is not None:
            for name in hooks:
                if name not in names:
                    raise UnknownHookError(name, names, what="cached hook")
            names = list(dict.fromkeys(hooks))
        store = cls(path, manifest, names, buffer_mb)
        if verify not in ("full", "sizes"):
            raise ConfigError(f"verify must be 'full' or 'sizes', got {verify!r}")
        store.verify(checksums=verify == "full")
        return store

    # --- what is in it ------------------------------------------------------------------

    def widths(self) -> dict[str, int]:
        return {name: self.manifest["widths"][name] for name in self.hook_names}

    def __len__(self) -> int:
        return sum(s.n_contexts for s in self.shards) * self.ctx_len

    @property
    def n_contexts(self) -> int:
        return sum(s.n_contexts for s in self.shards)

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def model_architecture(self) -> str | None:
        """The cached model's ``cfg.original_architecture`` (None for stores written before
        interp recorded it)."""
        return self.manifest["model"].get("architecture")

    @property
    def data(self) -> str | None:
        """The data source the store was cached from (``--data`` of ``interp cache run``), or
        None for tokens given directly and for stores written before it was recorded."""
        return (self.manifest.get("source") or {}).get("data")

    def __repr__(self) -> str:
        from interp.reports import brief, plain_repr

        m = self.manifest
        return plain_repr("ActivationStore", f"{str(self.path)!r}, {'complete' if self.complete else 'INCOMPLETE'}", [
            f"{self.n_contexts:,} contexts x {self.ctx_len} tokens = {len(self):,} rows in {len(self.shards)} shards, {m['dtype']}",
            f"model {m['model']['name']}; {len(self.hook_names)} hooks: {brief(self.hook_names, 3)}",
        ])

    def _repr_html_(self) -> str:
        from interp.reports import summary_html, table

        m = self.manifest
        size = sum(s.bytes for s in self.shards)
        rows = [
            ("path", str(self.path)),
            ("status", "complete" if self.complete else "incomplete: resume the run"),
            ("model", f"{m['model']['name']} ({m['model']['n_layers']} layers, d_model {m['model']['d_model']})"),
            ("rows", f"{len(self):,} ({self.n_contexts:,} contexts x {self.ctx_len} tokens)"),
            ("shards", f"{len(self.shards)} ({size / 2**20:,.1f} MiB, {m['dtype']})"),
            ("data", m.get("data") or "unspecified"),
        ]
        shown = table(["hook", "d"], [[name, d] for name, d in self.widths().items()], max_rows=12)
        return summary_html("Activation store", rows, table=shown)

    def summary(self) -> str:
        """What the command line prints (``interp cache run`` and ``interp cache info``): status,
        model, rows, shards, size, data and every hook with its width."""
        m = self.manifest
        size = sum(s.bytes for s in self.shards)
        lines = [
            f"{self.path}: {'complete' if self.complete else 'INCOMPLETE (resume it)'}",
            f"model {m['model']['name']} ({m['model']['n_layers']} layers, d_model {m['model']['d_model']})",
            f"{self.n_contexts:,} contexts x {self.ctx_len} tokens = {len(self):,} rows in {len(self.shards)} shards "
            f"({size / 2**20:,.1f} MiB, {m['dtype']})",
            f"data: {m.get('data') or 'unspecified'}",
            "hooks:",
        ]
        lines += [f"  {name}  d={m['widths'][name]}" for name in m["hook_names"]]
        return "\n".join(lines)

    def describe(self) -> str:
        """The same text as :meth:`summary`."""
        return self.summary()

    # --- integrity ----------------------------------------------------------------------

    def verify(self, checksums: bool = True) -> None:
        """Check every shard against the manifest: its size, the shape and dtype of every tensor
        in its own header, and (when ``checksums``) its XXH3-64 checksum.

        Raises:
            StoreError: naming the first shard that is missing, truncated, corrupt, or whose
                tensors are not what the manifest says (a manifest lying about a width).
        """
        for shard in self.shards:
            file = self.path / shard.file
            if not file.is_file():
                raise StoreError(f"{self.path}: shard {shard.file} listed in the manifest is missing")
            size = file.stat().st_size
            if size != shard.bytes:
                raise StoreError(
                    f"{self.path}: shard {shard.file} has {size:,} bytes but the manifest says {shard.bytes:,}; "
                    "the store does not match its manifest (a file was replaced or truncated)"
                )
            self._check_header(shard)
            if checksums:
                digest = file_checksum(file)
                if digest != shard.checksum:
                    raise StoreError(
                        f"{self.path}: shard {shard.file} fails its checksum (XXH3-64 {digest}, manifest "
                        f"{shard.checksum}); "
                        "the file is corrupt or does not belong to this manifest. Re-create the store, or delete "
                        "this shard and the shards after it from the manifest and resume."
                    )

    def _check_header(self, shard: Shard) -> None:
        """The shard's own safetensors header agrees with the manifest (widths, dtype, row counts)."""
        file = self.path / shard.file
        try:
            with open(file, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length)) if length <= _READ_CHUNK else None
        except (OSError, struct.error, ValueError) as err:
            header, length = None, err
        if not isinstance(header, dict):
            raise StoreError(f"{self.path}: shard {shard.file} has no readable safetensors header ({length}); the file is corrupt")
        widths, rows = self.manifest["widths"], shard.n_contexts * self.ctx_len
        expected = {name: ([rows, widths.get(name)], _SAFETENSORS_CODES[self.dtype]) for name in self.manifest["hook_names"]}
        expected[TOKEN_KEY] = ([shard.n_contexts, self.ctx_len], "I32")
        for name, (shape, dtype) in expected.items():
            entry = header.get(name)
            found = None if not isinstance(entry, dict) else (entry.get("shape"), entry.get("dtype"))
            if found != (shape, dtype):
                held = "no such tensor" if found is None else f"{found[1]} {found[0]}"
                raise StoreError(
                    f"{self.path}: shard {shard.file} holds {name} as {held}, but the manifest says {dtype} {shape}; "
                    "the manifest does not describe its shards (edited, or from another store): re-create the store"
                )

    # --- reading --------------------------------------------------------------------------

    def read_shard(self, index: int, hooks: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Shard ``index``'s rows in stream order: hooks (storage dtype) plus row provenance."""
        from safetensors import safe_open

        shard = self.shards[index]
        names = list(hooks) if hooks is not None else self.hook_names
        file = self.path / shard.file
        try:
            with safe_open(str(file), framework="pt") as handle:
                rows = {name: handle.get_tensor(name) for name in names}
                tokens = handle.get_tensor(TOKEN_KEY)
        except (OSError, ValueError, RuntimeError) as err:  # safetensors raises SafetensorError(ValueError-like)
            raise StoreError(f"{self.path}: could not read shard {shard.file}: {err}") from err
        if tokens.shape != (shard.n_contexts, self.ctx_len):
            raise StoreError(f"{self.path}: shard {shard.file} holds tokens {tuple(tokens.shape)}, manifest says "
                             f"({shard.n_contexts}, {self.ctx_len})")
        rows.update(block_meta(tokens, shard.start_context))
        return rows

    def tokens(self) -> Int[Tensor, "n_ctx ctx"]:
        """Every context's token ids, in stream order."""
        from safetensors import safe_open

        parts = []
        for shard in self.shards:
            with safe_open(str(self.path / shard.file), framework="pt") as handle:
                parts.append(handle.get_tensor(TOKEN_KEY).long())
        return torch.cat(parts) if parts else torch.zeros(0, self.ctx_len, dtype=torch.long)

    def read_all(self, device: str | torch.device | None = None) -> ActivationBatch:
        """Every row in stream order (row ``i`` is context ``i // ctx_len``); for small stores."""
        rows = [self.read_shard(i) for i in range(len(self.shards))]
        merged = {key: torch.cat([r[key] for r in rows]) for key in rows[0]}
        return to_batch(merged, self.hook_names, device)

    def _prefetched(self, order: list[int]) -> Iterator[dict[str, Tensor]]:
        """Shards in ``order``, each read in a background thread while the last is consumed."""
        from concurrent.futures import ThreadPoolExecutor

        if not order:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="interp-cache-read") as pool:
            future = pool.submit(self.read_shard, order[0])
            for following in [*order[1:], None]:
                rows = future.result()
                if following is not None:
                    future = pool.submit(self.read_shard, following)
                yield rows

    def batches(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        epoch: int = 0,
        device: str | torch.device | None = None,
    ) -> Iterator[ActivationBatch]:
        generator = generator_for(seed, epoch)
        order = torch.randperm(len(self.shards), generator=generator).tolist()
        row_bytes = self.dtype.itemsize * sum(self.widths().values()) + 24
        capacity = rows_for_memory(self.buffer_mb, row_bytes, minimum=2 * batch_size)
        for rows in mix(self._prefetched(order), batch_size, capacity, generator):
            yield to_batch(rows, self.hook_names, device)
