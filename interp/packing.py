"""Packing token streams into fixed-length contexts that start with BOS.

:func:`pack` concatenates documents, each preceded by BOS, and cuts the stream into
contexts of ``ctx_len`` tokens whose first token is BOS, as SAELens and TransformerLens'
``tokenize_and_concatenate`` do (:func:`pack_labelled` carries a label per token along);
:func:`batched` stacks contexts into batches. Pure token
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
    return (ids for ids, _ in pack_labelled(((doc, None) for doc in documents), ctx_len, bos_id))


def pack_labelled(
    documents: Iterable[tuple[Sequence[int], Sequence | None]], ctx_len: int, bos_id: int
) -> Iterator[tuple[list[int], list | None]]:
    """:func:`pack` for documents given as ``(token ids, a label per token)``: each context
    comes with its tokens' labels (None at every BOS it adds). With ``None`` for a document's
    labels, no labels are kept and each context's labels are None."""
    if ctx_len < 2:
        raise ConfigError(f"ctx_len must be at least 2 (BOS and one token), got {ctx_len}")
    body = ctx_len - 1
    ids: list[int] = []
    labels: list = []
    for doc, doc_labels in documents:
        if not (doc and doc[0] == bos_id):
            ids.append(bos_id)
            labels.append(None)
        ids.extend(doc)
        if doc_labels is not None:
            labels.extend(doc_labels)
        while len(ids) >= body:
            yield [bos_id] + ids[:body], ([None] + labels[:body] if doc_labels is not None else None)
            del ids[:body], labels[:body]


def batched(contexts: Iterable[list[int]], batch_size: int) -> Iterator[Int[Tensor, "batch ctx"]]:
    """Stack contexts into LongTensors of ``batch_size`` rows; a short last batch is dropped."""
    iterator = iter(contexts)
    while True:
        rows = list(islice(iterator, batch_size))
        if len(rows) < batch_size:
            return
        yield torch.tensor(rows, dtype=torch.long)


__all__ = ["batched", "pack", "pack_labelled"]
