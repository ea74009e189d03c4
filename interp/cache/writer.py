"""Writing a store: one forward pass per batch, all hooks at once, shards on a writer thread.

The forward pass of every batch is stopped after the last block a hook needs
(``stop_at_layer``). Hooks copy their activations straight into preallocated host
buffers, one per shard; on a GPU those buffers are pinned and the copies non-blocking,
and a CUDA event marks when a shard's copies are done. A writer thread waits on the
event, writes the shard (safetensors, atomic rename), then rewrites the manifest, while
the main thread already fills the next buffer. On the CPU the same code runs: the copies
are plain memcpys and the event is absent.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor

from interp.cache.fused import fused_unsupported
from interp.cache.source import capture_forward, check_hooks, probe_widths, stop_layer
from interp.cache.store import (
    FORMAT,
    MANIFEST,
    STORAGE_DTYPES,
    STORE,
    VERSION,
    ActivationStore,
    StorageDtype,
    file_checksum,
    read_manifest,
    shard_file,
    write_manifest,
    write_shard,
)
from interp.config import check_positive, parse_count, parse_positive_count
from interp.errors import ConfigError, StoreError
from interp.io import claim_output
from interp.models.fingerprint import fingerprint

logger = logging.getLogger(__name__)


@dataclass
class CacheConfig:
    """How to cache activations: batching, shard size, storage dtype, resuming."""

    batch_size: int = 32
    """Contexts per forward pass."""
    shard_mb: float = 64.0
    """Target size of one shard in MiB; a shard holds whole forward batches (at least one)."""
    dtype: StorageDtype = "float32"
    """Storage dtype of the activations (float32 keeps them exact)."""
    n_tokens: str | None = None
    """Tokens to cache, e.g. 16k or 5M, rounded down to whole contexts; unset caches until the token stream ends."""
    resume: bool = False
    """Continue an interrupted run in the same directory (same model, hooks, data and settings)."""
    overwrite: bool = False
    """Delete an existing store in the output directory and start again."""
    buffers: int = 2
    """Shard buffers in host memory: while the writer thread writes one, the forward fills another."""
    progress: bool = True
    """Show a progress bar with tokens/s and the ETA."""
    fused: bool = False
    """Run the fused forward (interp.cache.fused) where the model and hooks allow it: faster
    (1.7-2.1x on the reference model, 1.2x at GPT-2 small's shape, on a CPU), equal to
    transformer-lens' forward to float rounding. Off by default, so
    the store equals run_with_cache exactly."""
    description: str | None = None
    """Free-text description of the token stream, recorded in the manifest."""

    def __post_init__(self) -> None:
        check_positive(batch_size=self.batch_size, buffers=self.buffers)
        if self.shard_mb <= 0:
            raise ConfigError(f"--shard-mb must be positive, got {self.shard_mb}")
        if self.dtype not in STORAGE_DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(STORAGE_DTYPES)}, got {self.dtype!r}")
        if self.n_tokens is not None:
            parse_positive_count(self.n_tokens, "--n-tokens")
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: resume continues a store, overwrite deletes it")

    @property
    def token_budget(self) -> int | None:
        """``n_tokens`` as a number (None: until the token stream ends)."""
        return None if self.n_tokens is None else parse_count(self.n_tokens, "--n-tokens")


def rebatch(
    token_batches: Int[Tensor, "n_ctx ctx"] | Iterable[Tensor], batch_size: int, max_contexts: int | None
) -> Iterator[Int[Tensor, "batch ctx"]]:
    """Contexts regrouped into batches of ``batch_size`` (the last may be short), at most ``max_contexts``."""
    parts = [token_batches] if isinstance(token_batches, Tensor) else token_batches
    carry: list[Tensor] = []
    held = emitted = 0
    for part in parts:
        part = torch.as_tensor(part)
        part = part.unsqueeze(0) if part.ndim == 1 else part
        if part.ndim != 2:
            raise ConfigError(f"token batches must be [batch, ctx], got shape {tuple(part.shape)}")
        carry.append(part)
        held += part.shape[0]
        while held >= batch_size or (max_contexts is not None and emitted + held >= max_contexts):
            joined = torch.cat(carry) if len(carry) > 1 else carry[0]
            take = batch_size if max_contexts is None else min(batch_size, max_contexts - emitted)
            yield joined[:take]
            carry, held, emitted = [joined[take:]], held - take, emitted + take
            if emitted == max_contexts:
                return
    if held:
        yield torch.cat(carry)


@dataclass
class _Buffer:
    acts: dict[str, Tensor]
    tokens: Tensor


@dataclass
class _Job:
    index: int
    start_context: int
    n_contexts: int
    buffer: _Buffer
    event: object | None = None


@dataclass
class _ShardWriter:
    """The writer thread: writes finished shard buffers, then the manifest, in order."""

    path: Path
    manifest: dict
    buffers: list[_Buffer]
    ctx_len: int
    free: queue.Queue = field(default_factory=queue.Queue)
    jobs: queue.Queue = field(default_factory=queue.Queue)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        for buffer in self.buffers:
            self.free.put(buffer)
        self.thread = threading.Thread(target=self._run, name="interp-cache-writer", daemon=True)
        self.thread.start()

    def acquire(self) -> _Buffer:
        while True:
            self.check()
            try:
                return self.free.get(timeout=0.05)
            except queue.Empty:
                continue

    def submit(self, job: _Job) -> None:
        self.check()
        self.jobs.put(job)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Write every submitted shard, stop the thread, and raise its error if it had one."""
        self.jobs.put(None)
        self.thread.join()
        self.check()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:
                try:
                    self._write(job)
                except BaseException as err:  # noqa: BLE001 - handed to the main thread
                    self.error = err
            self.free.put(job.buffer)

    def _write(self, job: _Job) -> None:
        if job.event is not None:
            job.event.synchronize()
        n_rows = job.n_contexts * self.ctx_len
        tensors = {name: t[:n_rows] for name, t in job.buffer.acts.items()}
        tensors["tokens"] = job.buffer.tokens[: job.n_contexts]
        name = shard_file(job.index)
        metadata = {"format": FORMAT, "shard": str(job.index), "start_context": str(job.start_context)}
        try:
            size, digest = write_shard(self.path / name, tensors, metadata)
            entry = {"file": name, "start_context": job.start_context, "n_contexts": job.n_contexts, "bytes": size, "checksum": digest}
            manifest = {**self.manifest, "shards": [*self.manifest["shards"], entry]}
            manifest["n_contexts"] = job.start_context + job.n_contexts
            manifest["n_tokens"] = manifest["n_contexts"] * self.ctx_len
            write_manifest(self.path, manifest)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                done = self.manifest["shards"]
                written = sum(s["bytes"] for s in done)
                raise StoreError(
                    f"the disk is full: writing shard {job.index} to {self.path} failed ({err.strerror}). "
                    f"{len(done)} complete shards ({self.manifest['n_tokens']:,} tokens, {written / 2**20:,.1f} MiB) "
                    "were written and the store is intact. Free some space (or use --dtype bfloat16 to halve "
                    "the size) and continue with --resume."
                ) from err
            raise
        self.manifest = manifest


_RESUME_FLAGS = {
    "hook_names": "--sites/--layers/--hooks",
    "widths": "--model",
    "dtype": "--dtype",
    "ctx_len": "--ctx-len",
    "batch_size": "--batch-size",
    "model": "--model",
}
"""The settings a resumed store must share with the original, and the flags that set them."""


def _prepare(out: Path, cfg: CacheConfig, fresh: dict) -> dict:
    """The manifest to continue from: a fresh one, or the existing one when resuming (the
    directory is claimed already: :func:`interp.io.claim_output` refused what it must)."""
    if not (out / MANIFEST).is_file():
        write_manifest(out, fresh)
        return fresh
    manifest = read_manifest(out)
    # the model is compared on the keys both record (a store from before a key was recorded, or
    # from before interp.models.fingerprint, which recorded another weight hash, has fewer)
    shared = [k for k in manifest["model"] if k in fresh["model"]]
    stored = {**manifest, "model": {k: manifest["model"][k] for k in shared}}
    now = {**fresh, "model": {k: fresh["model"][k] for k in shared}}
    differ = [k for k in _RESUME_FLAGS if stored[k] != now[k]]
    if differ:
        detail = "; ".join(f"{k} ({_RESUME_FLAGS[k]}): the store has {stored[k]!r}, this run {now[k]!r}" for k in differ)
        raise StoreError(f"cannot resume {out}: the run's settings differ from the store's: {detail}")
    for stale in out.glob(".*.tmp"):
        stale.unlink()
    store = ActivationStore(out, manifest, manifest["hook_names"], buffer_mb=0.0)
    store.verify(checksums=False)
    if store.shards:
        last = store.shards[-1]
        if file_checksum(out / last.file) != last.checksum:
            raise StoreError(f"cannot resume {out}: its last shard {last.file} fails its checksum")
    manifest["target_contexts"] = fresh["target_contexts"]
    manifest["config"] = {**manifest["config"], "n_tokens": cfg.n_tokens}
    manifest["complete"] = False
    return manifest


def cache_activations(
    model,
    hook_names: Sequence[str],
    token_batches: Int[Tensor, "n_ctx ctx"] | Iterable[Tensor],
    out: str | os.PathLike,
    cfg: CacheConfig | None = None,
    *,
    source: Mapping[str, object] | None = None,
) -> ActivationStore:
    """Run ``model`` over a token stream and store the activations at ``hook_names``.

    All hooks are captured in one forward pass per batch, stopped after the last block
    any hook needs. Shards are written atomically by a writer thread and the manifest is
    updated after each complete shard, so an interrupted run leaves a valid store that
    ``CacheConfig(resume=True)`` continues; the resumed store equals an uninterrupted one
    row for row (same token stream, same batches).

    Args:
        model: a transformer-lens ``HookedTransformer``.
        hook_names: hook points to capture (validated; see ``interp.hooks.resolve``).
        token_batches: ``[n_ctx, ctx]`` token ids, or an iterable of ``[batch, ctx]``
            batches (e.g. :func:`interp.data.token_batches`); it must give the same
            contexts when a run is resumed.
        out: the store directory.
        cfg: batching, shard size, storage dtype, token budget, resume/overwrite.
        source: the data source the tokens come from, recorded in the manifest as
            ``source`` (``{"data": ..., "seed": ...}``, what :func:`interp.cache.run` passes),
            so a transcoder trained from the store knows its data (None: tokens given directly).

    Returns:
        The finished store, opened.

    Raises:
        UnknownHookError: a hook name the model lacks (with close matches).
        StoreError: the directory holds a store already (without resume/overwrite), a
            resume whose settings or tokens differ, or a full disk (the store stays intact).
    """
    cfg = cfg or CacheConfig()
    names = check_hooks(model, hook_names)
    widths = probe_widths(model, names)
    stop = stop_layer(model, names)
    out = Path(out)
    device = torch.device(model.cfg.device)
    dtype = STORAGE_DTYPES[cfg.dtype]

    stream = iter(rebatch(token_batches, cfg.batch_size, None))
    first = next(stream, None)
    if first is None:
        raise ConfigError("the token stream is empty: there is nothing to cache")
    ctx_len = int(first.shape[1])
    if ctx_len > model.cfg.n_ctx:
        raise ConfigError(f"contexts of {ctx_len} tokens exceed the model's n_ctx={model.cfg.n_ctx}")
    budget = cfg.token_budget
    target = None if budget is None else budget // ctx_len
    if target == 0:
        raise ConfigError(f"--n-tokens {cfg.n_tokens} is less than one context of {ctx_len} tokens")
    row_bytes = dtype.itemsize * sum(widths.values())
    batches_per_shard = max(1, int(cfg.shard_mb * 2**20) // (row_bytes * ctx_len * cfg.batch_size))
    fresh = {
        "format": FORMAT,
        "version": VERSION,
        "model": fingerprint(model),
        "hook_names": names,
        "widths": widths,
        "dtype": cfg.dtype,
        "ctx_len": ctx_len,
        "batch_size": cfg.batch_size,
        "contexts_per_shard": batches_per_shard * cfg.batch_size,
        "stop_at_layer": stop,
        "forward": "fused" if cfg.fused and fused_unsupported(model, names) is None else "transformer-lens",
        "target_contexts": target,
        "data": cfg.description,
        "source": dict(source) if source is not None else None,
        "config": asdict(cfg),
        "complete": False,
        "n_contexts": 0,
        "n_tokens": 0,
        "shards": [],
    }
    with claim_output(out, STORE, overwrite=cfg.overwrite, resume=cfg.resume):
        return _write(model, names, widths, out, cfg, fresh, first, stream, target, ctx_len, dtype, device)


def _write(model, names, widths, out: Path, cfg: CacheConfig, fresh: dict, first: Tensor, stream: Iterator[Tensor],
           target: int | None, ctx_len: int, dtype: torch.dtype, device: torch.device) -> ActivationStore:
    """The body of :func:`cache_activations`, inside its claim of ``out``."""
    manifest = _prepare(out, cfg, fresh)
    per_shard = manifest["contexts_per_shard"]
    done = manifest["n_contexts"]
    if target is not None and done > target:
        raise StoreError(f"cannot resume {out} with --n-tokens {cfg.n_tokens}: it already holds {manifest['n_tokens']:,} tokens")

    batches = _chain(first, stream, target)
    if done:
        batches = _skip_done(out, manifest, batches, done, cfg.batch_size)
    pinned = device.type == "cuda"
    buffers = [
        _Buffer(
            acts={n: torch.empty(per_shard * ctx_len, w, dtype=dtype, pin_memory=pinned) for n, w in widths.items()},
            tokens=torch.empty(per_shard, ctx_len, dtype=torch.int32, pin_memory=pinned),
        )
        for _ in range(cfg.buffers)
    ]
    writer = _ShardWriter(out, manifest, buffers, ctx_len)
    slot: dict = {}

    def sink(name: str, act: Tensor) -> None:
        rows = act.reshape(slot["n"], -1).to(dtype)
        slot["buffer"].acts[name][slot["row"] : slot["row"] + slot["n"]].copy_(rows, non_blocking=True)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=None if target is None else target * ctx_len,
        initial=done * ctx_len,
        unit="tok",
        unit_scale=True,
        desc=f"caching {len(names)} hooks",
        disable=not cfg.progress,
    )
    started = time.perf_counter()
    index = len(manifest["shards"])
    try:
        with capture_forward(model, names, sink, fused=cfg.fused) as run:
            while True:
                buffer = writer.acquire()
                filled = 0
                for tokens in _take_contexts(batches, per_shard):
                    n = tokens.shape[0]
                    slot.update(buffer=buffer, row=filled * ctx_len, n=n * ctx_len)
                    buffer.tokens[filled : filled + n].copy_(tokens)
                    run(tokens.to(device, non_blocking=True))
                    filled += n
                    bar.update(n * ctx_len)
                if filled == 0:
                    writer.free.put(buffer)
                    break
                event = None
                if pinned:
                    event = torch.cuda.Event()
                    event.record(torch.cuda.current_stream(device))
                writer.submit(_Job(index, done, filled, buffer, event))
                index += 1
                done += filled
                if filled < per_shard:
                    break
    except BaseException:
        try:
            writer.close()
        finally:
            bar.close()
            logger.warning("caching stopped; %s holds %d complete shards and can be resumed", out, len(writer.manifest["shards"]))
        raise
    writer.close()
    bar.close()
    manifest = {**writer.manifest, "complete": True}
    if target is not None and manifest["n_contexts"] < target:
        logger.warning(
            "the token stream ran out after %s tokens (%d contexts), fewer than --n-tokens %s: the store holds those %s "
            "tokens; pass more text with --data to cache more, or --n-tokens %s to ask for what there is",
            f"{manifest['n_tokens']:,}", manifest["n_contexts"], cfg.n_tokens, f"{manifest['n_tokens']:,}", manifest["n_tokens"],
        )
    write_manifest(out, manifest)
    logger.info("cached %d tokens in %.1f s", manifest["n_tokens"], time.perf_counter() - started)
    return ActivationStore.open(out, verify="sizes", allow_incomplete=True)  # the marker says complete once the claim ends


def _chain(first: Tensor, rest: Iterator[Tensor], target: int | None) -> Iterator[Tensor]:
    """The batches, capped at ``target`` contexts."""
    emitted = 0
    for tokens in itertools.chain([first], rest):
        if target is not None:
            if emitted >= target:
                return
            tokens = tokens[: target - emitted]
        emitted += tokens.shape[0]
        yield tokens


def _take_contexts(batches: Iterator[Tensor], n: int) -> Iterator[Tensor]:
    """Batches from ``batches`` until ``n`` contexts (a whole number of batches) are taken."""
    taken = 0
    while taken < n:
        tokens = next(batches, None)
        if tokens is None:
            return
        taken += tokens.shape[0]
        yield tokens


def _skip_done(out: Path, manifest: dict, batches: Iterator[Tensor], done: int, batch_size: int) -> Iterator[Tensor]:
    """The token stream after the stored contexts, checking those are the same tokens. A store
    that ended in a short batch (its token budget, now raised) continues with that batch's rest."""
    stored = ActivationStore(out, manifest, manifest["hook_names"], buffer_mb=0.0).tokens()
    seen = 0
    while seen < done:
        tokens = next(batches, None)
        if tokens is None:
            raise StoreError(f"cannot resume {out}: the token stream ended after {seen} contexts, but the store holds {done}")
        n = min(tokens.shape[0], done - seen)
        rest, tokens = tokens[n:], tokens[:n]
        if not torch.equal(tokens.long().cpu(), stored[seen : seen + n]):
            raise StoreError(
                f"cannot resume {out}: the token stream differs from the one the store was written from "
                f"(contexts {seen}..{seen + n - 1}); resume with the same data, seed and context length"
            )
        seen += n
    return rebatch(itertools.chain([rest], batches), batch_size, None) if len(rest) else batches
