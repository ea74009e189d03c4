"""In-memory activations: run the model on the fly, no disk (for small runs and tests)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from interp.cache.source import (
    ActivationBatch,
    block_meta,
    capture_forward,
    check_hooks,
    generator_for,
    mix,
    probe_widths,
    rows_for_memory,
    to_batch,
)
from interp.config import parse_positive_count
from interp.errors import ConfigError


def collect_contexts(
    tokens: Int[Tensor, "n_ctx ctx"] | Iterable[Tensor],
    n_tokens: int | str | None = None,
) -> Int[Tensor, "n_ctx ctx"]:
    """Token contexts as one ``[n_ctx, ctx]`` CPU LongTensor.

    ``tokens`` is a 2-D tensor or an iterable of ``[batch, ctx]`` (or ``[ctx]``) tensors,
    such as :func:`interp.data.token_batches`. ``n_tokens`` caps the total, rounded down
    to whole contexts (``16k`` and ``5M`` are read as counts); it is required for an iterator
    without a length (it may be endless).
    """
    n_tokens = None if n_tokens is None else parse_positive_count(n_tokens, "n_tokens")
    if isinstance(tokens, Tensor):
        if tokens.ndim != 2:
            raise ConfigError(f"tokens must be [n_ctx, ctx], got shape {tuple(tokens.shape)}")
        out = tokens
    else:
        if n_tokens is None and not hasattr(tokens, "__len__"):
            raise ConfigError(
                "tokens is an iterator of unknown length (it may be endless, like interp.data.token_batches): "
                "pass n_tokens= to say how many tokens to use"
            )
        parts: list[Tensor] = []
        held = 0
        for part in tokens:
            part = torch.as_tensor(part)
            part = part.unsqueeze(0) if part.ndim == 1 else part
            if part.ndim != 2:
                raise ConfigError(f"each token batch must be [batch, ctx] or [ctx], got shape {tuple(part.shape)}")
            if parts and part.shape[1] != parts[0].shape[1]:
                raise ConfigError(f"token batches have different context lengths: {parts[0].shape[1]} and {part.shape[1]}")
            parts.append(part)
            held += part.numel()
            if n_tokens is not None and held >= n_tokens:
                break
        if not parts:
            raise ConfigError("tokens is empty: there is nothing to run the model on")
        out = torch.cat(parts)
    if n_tokens is not None:
        n_ctx = n_tokens // out.shape[1]
        if n_ctx < 1:
            raise ConfigError(f"n_tokens={n_tokens} is less than one context of {out.shape[1]} tokens")
        if n_ctx > out.shape[0]:
            raise ConfigError(f"n_tokens={n_tokens} asks for {n_ctx} contexts but the tokens hold only {out.shape[0]}")
        out = out[:n_ctx]
    if out.shape[0] == 0:
        raise ConfigError("tokens is empty: there is nothing to run the model on")
    return out.detach().to("cpu", torch.long).contiguous()


class StreamingActivations:
    """An :class:`~interp.cache.source.ActivationSource` that runs the model as it reads.

    The contexts are cut into fixed blocks of ``forward_batch`` contexts, each run in one
    forward pass (all hooks captured at once, stopped after the last needed block). An
    epoch runs the blocks in an order drawn from ``(seed, epoch)`` and shuffles their rows
    through a mixing buffer of ``buffer_mb`` megabytes; every row comes out once. Nothing
    is kept between epochs, so each epoch costs one forward pass over the tokens.

    Args:
        model: a transformer-lens ``HookedTransformer`` (its device runs the forward).
        hook_names: hook points to capture, e.g. ``interp.hooks.resolve(model, "ln2_normalized")``.
        tokens: ``[n_ctx, ctx]`` token ids, or an iterable of such batches.
        n_tokens: use this many tokens (rounded down to whole contexts), e.g. ``4096`` or
            ``"16k"``; needed when ``tokens`` is an endless iterator.
        forward_batch: contexts per forward pass.
        buffer_mb: size of the mixing buffer.
        fused: run the fused forward of :mod:`interp.cache.fused` where the model and
            hooks allow it: faster (on a CPU 1.7-2.1x on the reference model, 1.2x at
            GPT-2 small's shape, where matmuls dominate), equal to transformer-lens' forward to
            float rounding (the default, False, runs transformer-lens' forward, so the
            rows equal ``run_with_cache`` exactly). The transcoder trainer turns it on.
    """

    def __init__(
        self,
        model,
        hook_names: Sequence[str],
        tokens: Int[Tensor, "n_ctx ctx"] | Iterable[Tensor],
        *,
        n_tokens: int | str | None = None,
        forward_batch: int = 32,
        buffer_mb: float = 256.0,
        fused: bool = False,
    ) -> None:
        if forward_batch < 1:
            raise ConfigError(f"forward_batch must be positive, got {forward_batch}")
        self.model = model
        self.hook_names = check_hooks(model, hook_names)
        self.tokens = collect_contexts(tokens, n_tokens)
        if self.tokens.shape[1] > model.cfg.n_ctx:
            raise ConfigError(f"contexts of {self.tokens.shape[1]} tokens exceed the model's n_ctx={model.cfg.n_ctx}")
        self.forward_batch = forward_batch
        self.buffer_mb = buffer_mb
        self.fused = fused
        self._workspace: dict[str, Tensor] = {}  # the fused forward's reused buffers
        self._widths = probe_widths(model, self.hook_names)

    @property
    def ctx_len(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def model_architecture(self) -> str | None:
        """The model's ``cfg.original_architecture`` (as an activation store records it)."""
        return self.model.cfg.original_architecture

    @property
    def n_contexts(self) -> int:
        return int(self.tokens.shape[0])

    def widths(self) -> dict[str, int]:
        return dict(self._widths)

    def __len__(self) -> int:
        return self.tokens.numel()

    def __repr__(self) -> str:
        from interp.reports import brief, plain_repr

        return plain_repr("StreamingActivations", f"{self.n_contexts} contexts x {self.ctx_len} tokens = {len(self):,} rows", [
            f"{len(self.hook_names)} hooks: {brief(self.hook_names, 3)}",
        ])

    def _repr_html_(self) -> str:
        from interp.reports import summary_html, table

        rows = [("model", self.model.cfg.model_name), ("rows", f"{len(self):,} ({self.n_contexts:,} contexts x {self.ctx_len} tokens)"),
                ("forward batch", self.forward_batch)]
        shown = table(["hook", "d"], [[name, d] for name, d in self.widths().items()], max_rows=12)
        return summary_html("Streaming activations (computed on the fly, no disk)", rows, table=shown)

    def block(self, index: int) -> dict[str, Tensor]:
        """The rows of block ``index`` (contexts ``index * forward_batch`` on), in stream order."""
        start = index * self.forward_batch
        tokens = self.tokens[start : start + self.forward_batch]
        n_rows = tokens.numel()
        rows: dict[str, Tensor] = {}

        def keep(name: str, act: Tensor) -> None:
            rows[name] = act.detach().reshape(n_rows, -1).to(torch.float32, copy=True)

        with capture_forward(self.model, self.hook_names, keep, fused=self.fused, workspace=self._workspace) as run:
            run(tokens.to(self.model.cfg.device))
        rows.update(block_meta(tokens, start))
        return rows

    def batches(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        epoch: int = 0,
        device: str | torch.device | None = None,
    ) -> Iterator[ActivationBatch]:
        generator = generator_for(seed, epoch)
        n_blocks = -(-self.n_contexts // self.forward_batch)
        order = torch.randperm(n_blocks, generator=generator).tolist()
        row_bytes = 4 * sum(self._widths.values()) + 24
        capacity = rows_for_memory(self.buffer_mb, row_bytes, minimum=2 * batch_size)
        blocks = (self.block(index) for index in order)
        for rows in mix(blocks, batch_size, capacity, generator):
            yield to_batch(rows, self.hook_names, device)
