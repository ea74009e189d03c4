"""What every activation source shares: the batch type, the protocol, capture and mixing.

An *activation source* holds rows: one row per (context, position) of a token stream,
with the activations of several hook points at that position, all from one forward
pass. Two implementations satisfy :class:`ActivationSource`:
:class:`~interp.cache.streaming.StreamingActivations` (runs the model on the fly, no
disk) and :class:`~interp.cache.store.ActivationStore` (reads a sharded store written by
:func:`~interp.cache.writer.cache_activations`).

Both read in *blocks* (a shard, or a fixed group of contexts run in one forward pass),
visit the blocks in an order drawn from ``(seed, epoch)``, and pass their rows through
:func:`mix`, a buffer that shuffles rows across blocks. Every row leaves the buffer
exactly once, so every epoch yields every row exactly once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import ConfigError
from interp.hooks import layer_of, opened, validate

TOKEN_KEY = "tokens"
CONTEXT_KEY = "context"
POSITION_KEY = "position"
META_KEYS = (TOKEN_KEY, CONTEXT_KEY, POSITION_KEY)

# Hook points whose activations are not one vector per token position.
_NOT_PER_TOKEN = ("hook_pattern", "hook_attn_scores")
# Hook points before the first block: stopping after "layer -1" runs only the embedding.
_BEFORE_BLOCKS = ("hook_embed", "hook_pos_embed", "hook_tokens")


@dataclass
class ActivationBatch:
    """A batch of rows: activations at several hook points, and where each row came from."""

    acts: dict[str, Float[Tensor, "batch d"]]
    """Hook name -> activations, float32, on the requested device."""
    tokens: Int[Tensor, " batch"]
    """The token id at each row's position."""
    context: Int[Tensor, " batch"]
    """Index of each row's context in the source's token stream (0-based)."""
    position: Int[Tensor, " batch"]
    """Position of each row in its context (0 is the first token, usually BOS)."""

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def __repr__(self) -> str:
        widths = ", ".join(f"{name} d={a.shape[-1]}" for name, a in list(self.acts.items())[:3])
        more = f", ... (+{len(self.acts) - 3} more)" if len(self.acts) > 3 else ""
        return f"ActivationBatch({len(self)} rows; {widths}{more})"

    def row_ids(self, ctx_len: int) -> Int[Tensor, " batch"]:
        """A unique id per row, ``context * ctx_len + position`` (the row's index in stream order)."""
        return self.context * ctx_len + self.position


@runtime_checkable
class ActivationSource(Protocol):
    """Rows of activations at ``hook_names``, read in shuffled batches for training."""

    hook_names: list[str]

    def widths(self) -> dict[str, int]:
        """Hook name -> the width ``d`` of its rows."""
        ...

    def __len__(self) -> int:
        """Rows per epoch."""
        ...

    def batches(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        epoch: int = 0,
        device: str | torch.device | None = None,
    ) -> Iterator[ActivationBatch]:
        """Every row exactly once, shuffled across the whole source, in an order fixed by
        ``(seed, epoch)``. All batches hold ``batch_size`` rows except possibly the last."""
        ...


# --- hooks and the forward pass -----------------------------------------------------------


def check_hooks(model, hook_names: Sequence[str]) -> list[str]:
    """Validated, de-duplicated hook names that capture one vector per token position.

    Raises:
        UnknownHookError: a name is not a hook point of ``model`` (lists close matches).
        ValueError: no names, or a hook (an attention pattern) that is not per token.
    """
    names = list(dict.fromkeys(hook_names))
    if not names:
        raise ConfigError("no hook names given: name at least one hook point to capture (see `interp info MODEL`)")
    validate(model, names)
    for name in names:
        if name.endswith(_NOT_PER_TOKEN):
            raise ConfigError(
                f"{name} holds one value per pair of positions, not one vector per token, so it cannot be "
                "cached as rows; cache blocks.L.attn.hook_z or blocks.L.hook_attn_out instead"
            )
    return names


def stop_layer(model, hook_names: Sequence[str]) -> int | None:
    """The ``stop_at_layer`` that runs just far enough to reach every hook (None: run all).

    Hooks inside block ``L`` need blocks ``0..L``, so the forward stops before block
    ``L + 1``; for hooks in the last block this still skips the final LayerNorm and the
    unembedding. Hooks after the blocks (``ln_final``, ``unembed``) need the full model.
    """
    last = -1
    for name in hook_names:
        layer = layer_of(name)
        if layer is None:
            if name.startswith(_BEFORE_BLOCKS):
                continue
            return None
        last = max(last, layer)
    return last + 1


@contextlib.contextmanager
def capturing(model, hook_names: Sequence[str], sink: Callable[[str, Tensor], None]) -> Iterator[None]:
    """Within the block, every forward pass calls ``sink(name, activation)`` at each hook.

    The hooks are removed when the block ends, on error too. ``activation`` is the hook's
    tensor, ``[batch, pos, ...]``; the sink must copy what it keeps. Hook points that
    TransformerLens computes only behind a flag (``hook_mlp_in``, ...) have it turned on for
    the block (:func:`interp.hooks.opened`).
    """

    def make(name: str):
        def hook(activation: Tensor, hook) -> None:  # noqa: ARG001 - transformer-lens signature
            sink(name, activation)

        return hook

    with opened(model, hook_names), model.hooks(fwd_hooks=[(name, make(name)) for name in hook_names]):
        yield


def run_forward(model, tokens: Int[Tensor, "batch pos"], stop_at_layer: int | None) -> None:
    """One forward pass, without gradients, stopped after ``stop_at_layer`` blocks."""
    with torch.inference_mode():
        if stop_at_layer is None:
            model(tokens, return_type=None)
        else:
            model(tokens, stop_at_layer=stop_at_layer)


@contextlib.contextmanager
def capture_forward(
    model,
    hook_names: Sequence[str],
    sink: Callable[[str, Tensor], None],
    *,
    fused: bool = False,
    workspace: dict[str, Tensor] | None = None,
) -> Iterator[Callable[[Tensor], None]]:
    """Within the block, ``run(tokens)`` runs one forward pass that calls ``sink`` at each hook.

    With ``fused``, models and hooks that :mod:`interp.cache.fused` handles
    run its fused forward (faster: see :mod:`interp.cache.fused`; equal to float
    rounding); everything else runs transformer-lens' forward with temporary hooks,
    stopped after the last needed block. Hooks are removed when the block ends.
    ``workspace`` (a dict kept by the caller) lets the fused forward reuse its buffers
    across blocks; the sink must copy what it keeps.
    """
    from interp.cache.fused import fused_capture, fused_unsupported

    names = list(hook_names)
    if fused and fused_unsupported(model, names) is None:
        space = {} if workspace is None else workspace
        yield lambda tokens: fused_capture(model, tokens, names, sink, space)
        return
    stop = stop_layer(model, names)
    with capturing(model, names, sink):
        yield lambda tokens: run_forward(model, tokens, stop)


def probe_widths(model, hook_names: Sequence[str]) -> dict[str, int]:
    """Hook name -> row width, measured on a 5-token forward pass."""
    shapes: dict[str, tuple[int, ...]] = {}
    pos = 5
    tokens = torch.zeros(1, pos, dtype=torch.long, device=model.cfg.device)
    with capturing(model, hook_names, lambda name, act: shapes.__setitem__(name, tuple(act.shape))):
        run_forward(model, tokens, stop_layer(model, hook_names))
    widths = {}
    for name in hook_names:
        shape = shapes.get(name)
        if shape is None or shape[:2] != (1, pos):
            raise ConfigError(f"{name} did not produce one vector per token position (shape {shape}); it cannot be cached")
        widths[name] = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return widths


# --- shuffling -------------------------------------------------------------------------------


def generator_for(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, epoch)`` (well mixed, so nearby seeds differ)."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def _take(chunk: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {key: value.index_select(0, index.to(value.device)) for key, value in chunk.items()}


def _concat(chunks: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    if len(chunks) == 1:
        return chunks[0]
    return {key: torch.cat([c[key] for c in chunks]) for key in chunks[0]}


def mix(
    blocks: Iterable[dict[str, Tensor]],
    batch_size: int,
    capacity: int,
    generator: torch.Generator,
) -> Iterator[dict[str, Tensor]]:
    """Shuffle rows across blocks with a mixing buffer of about ``capacity`` rows.

    Each block is a dict of row-aligned tensors. Blocks are appended to the buffer; once
    it holds at least ``capacity`` rows it is permuted and all but ``capacity // 2`` rows
    (rounded to whole batches) leave as batches, the rest staying to mix with the next
    blocks. At the end the remainder is permuted and emitted, the last batch possibly
    short. Every row is emitted exactly once; the order depends only on ``generator``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    capacity = max(capacity, 2 * batch_size)
    pending: list[dict[str, Tensor]] = []
    held = 0
    for block in blocks:
        pending.append(block)
        held += len(next(iter(block.values())))
        if held < capacity:
            continue
        buffer = _concat(pending)
        order = torch.randperm(held, generator=generator)
        n_out = (held - capacity // 2) // batch_size * batch_size
        for start in range(0, n_out, batch_size):
            yield _take(buffer, order[start : start + batch_size])
        pending = [_take(buffer, order[n_out:])]
        held -= n_out
    if held:
        buffer = _concat(pending)
        order = torch.randperm(held, generator=generator)
        for start in range(0, held, batch_size):
            yield _take(buffer, order[start : start + batch_size])


def to_batch(rows: dict[str, Tensor], hook_names: Sequence[str], device: str | torch.device | None) -> ActivationBatch:
    """Rows from :func:`mix` as an :class:`ActivationBatch` (activations float32 on ``device``)."""

    def move(t: Tensor) -> Tensor:
        return t if device is None else t.to(device, non_blocking=True)

    return ActivationBatch(
        acts={name: move(rows[name]).to(torch.float32) for name in hook_names},
        tokens=move(rows[TOKEN_KEY]).long(),
        context=move(rows[CONTEXT_KEY]).long(),
        position=move(rows[POSITION_KEY]).long(),
    )


def block_meta(tokens: Int[Tensor, "n_ctx ctx"], first_context: int) -> dict[str, Tensor]:
    """Row provenance of a block of contexts: token, context index and position per row."""
    n_ctx, ctx_len = tokens.shape
    context = torch.arange(first_context, first_context + n_ctx, dtype=torch.long).repeat_interleave(ctx_len)
    position = torch.arange(ctx_len, dtype=torch.long).repeat(n_ctx)
    return {TOKEN_KEY: tokens.reshape(-1).long(), CONTEXT_KEY: context, POSITION_KEY: position}


def rows_for_memory(megabytes: float, row_bytes: int, minimum: int) -> int:
    """How many rows of ``row_bytes`` fit in ``megabytes`` (at least ``minimum``)."""
    return max(int(megabytes * 2**20) // max(row_bytes, 1), minimum)
