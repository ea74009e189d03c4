"""Packing token streams into fixed-length contexts that start with BOS.

:func:`pack` concatenates documents, each preceded by BOS, and cuts the stream into
contexts of ``ctx_len`` tokens whose first token is BOS, as SAELens and TransformerLens'
``tokenize_and_concatenate`` do; :func:`batched` stacks contexts into batches. Pure token
arithmetic with no data source, so the reference model's trainer and :mod:`interp.data`
both build on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import ConfigError


def pack(documents: Iterable[Sequence[int]], ctx_len: int, bos_id: int) -> Iterator[list[int]]:
    """Concatenate documents (each preceded by BOS) and cut into BOS-led contexts."""
    if ctx_len < 2:
        raise ConfigError(f"ctx_len must be at least 2 (BOS and one token), got {ctx_len}")
    body = ctx_len - 1
    buffer: list[int] = []
    for doc in documents:
        if doc and doc[0] == bos_id:
            buffer.extend(doc)
        else:
            buffer.append(bos_id)
            buffer.extend(doc)
        while len(buffer) >= body:
            yield [bos_id] + buffer[:body]
            del buffer[:body]


def batched(contexts: Iterable[list[int]], batch_size: int) -> Iterator[Int[Tensor, "batch ctx"]]:
    """Stack contexts into LongTensors of ``batch_size`` rows; a short last batch is dropped."""
    iterator = iter(contexts)
    while True:
        rows = list(islice(iterator, batch_size))
        if len(rows) < batch_size:
            return
        yield torch.tensor(rows, dtype=torch.long)


__all__ = ["batched", "pack"]
