"""Feeding transcoders: (input, target) pairs per layer from an activation source.

The trainer consumes an iterator of ``{key: (x, y)}`` dicts, one entry per transcoder
(``x`` the MLP input, ``y`` the MLP output of that layer, the same rows for every layer
because they come from one forward pass). :class:`PairedBatches` builds that iterator
from any :class:`interp.cache.ActivationSource` (the on-disk ``ActivationStore`` or
``StreamingActivations`` running the model on the fly) and remembers its position
``(epoch, batch)`` so that a resumed run sees exactly the batches it would have seen.
:class:`InMemoryActivations` is a source over tensors you already hold.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import ConfigError, StoreError
from interp.hooks import hook_name

Pair = tuple[Float[Tensor, "batch d_in"], Float[Tensor, "batch d_out"]]
PairBatch = dict[str, Pair]


def layer_key(layer: int) -> str:
    """The name a layer's transcoder goes by in runs, checkpoints and reports."""
    return f"layer_{layer}"


def layer_hooks(layer: int) -> tuple[str, str]:
    """``(input hook, output hook)`` of the MLP transcoder of ``layer``."""
    return hook_name("mlp_in", layer), hook_name("mlp_out", layer)


def required_hooks(layers: Sequence[int]) -> list[str]:
    return [h for layer in layers for h in layer_hooks(layer)]


@dataclass
class _Batch:
    acts: dict[str, Tensor]
    tokens: Tensor


class InMemoryActivations:
    """An activation source over tensors already in memory (``{hook: [n, d]}``).

    Satisfies the :class:`interp.cache.ActivationSource` protocol: ``batches`` yields
    every row once per epoch in an order fixed by ``(seed, epoch)``; a short last batch
    is dropped. (Short last batches of other sources are skipped by :class:`PairedBatches`.)
    """

    def __init__(self, acts: dict[str, Tensor], tokens: Tensor | None = None) -> None:
        lengths = {name: t.shape[0] for name, t in acts.items()}
        if len(set(lengths.values())) != 1:
            raise ConfigError(f"every hook needs the same number of rows, got {lengths}")
        self.acts = {name: t.reshape(t.shape[0], -1) for name, t in acts.items()}
        self.hook_names = list(acts)
        n = next(iter(lengths.values()))
        self.tokens = tokens.reshape(-1) if tokens is not None else torch.zeros(n, dtype=torch.long)

    def widths(self) -> dict[str, int]:
        return {name: t.shape[1] for name, t in self.acts.items()}

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def batches(self, batch_size: int, *, seed: int = 0, epoch: int = 0, device=None) -> Iterator[_Batch]:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(self), generator=generator)
        for start in range(0, len(self) - batch_size + 1, batch_size):
            rows = order[start : start + batch_size]
            acts = {name: t[rows].to(device) if device else t[rows] for name, t in self.acts.items()}
            yield _Batch(acts, self.tokens[rows])


class PairedBatches:
    """Endless ``{layer_key: (x, y)}`` batches from a source, epoch after epoch, resumable.

    ``position`` is ``(epoch, batch)`` of the next batch; pass it back as ``start`` to
    continue exactly there. ``shard=(rank, world)`` keeps only this rank's contiguous
    share of each batch's rows (data parallelism).
    """

    def __init__(
        self,
        source,
        layers: Sequence[int],
        batch_size: int,
        *,
        seed: int = 0,
        start: tuple[int, int] = (0, 0),
        shard: tuple[int, int] = (0, 1),
        device=None,
    ) -> None:
        missing = [h for h in required_hooks(layers) if h not in source.hook_names]
        if missing:
            raise StoreError(
                f"the activation source lacks {missing}; it holds {source.hook_names}. "
                "Cache both the MLP input (mlp_in) and output (mlp_out) of every layer you train."
            )
        if len(source) < batch_size:
            raise StoreError(f"the activation source holds {len(source)} rows, fewer than one batch of {batch_size}")
        rank, world = shard
        if batch_size % world:
            raise ConfigError(f"batch_size {batch_size} must divide evenly over {world} processes")
        self.source, self.layers, self.batch_size, self.seed = source, list(layers), batch_size, seed
        self.position = start
        self.shard = shard
        self.device = device

    def __iter__(self) -> Iterator[PairBatch]:
        epoch, skip = self.position
        rank, world = self.shard
        per = self.batch_size // world
        while True:
            produced = 0
            for index, batch in enumerate(self.source.batches(self.batch_size, seed=self.seed, epoch=epoch)):
                if index < skip:
                    continue
                if len(batch.tokens) < self.batch_size:  # a source's short last batch
                    continue
                self.position = (epoch, index + 1)
                produced += 1
                rows = slice(rank * per, (rank + 1) * per)
                pairs = {}
                for layer in self.layers:
                    hin, hout = layer_hooks(layer)
                    x, y = batch.acts[hin][rows], batch.acts[hout][rows]
                    if self.device is not None:
                        x, y = x.to(self.device), y.to(self.device)
                    pairs[layer_key(layer)] = (x.float(), y.float())
                yield pairs
            if produced == 0 and skip == 0:
                raise StoreError("the activation source yielded no batches")
            epoch, skip = epoch + 1, 0
            self.position = (epoch, 0)
