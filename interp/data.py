"""Token streams, packed into fixed-length contexts that start with BOS.

Three sources of documents, all yielding lists of token ids:

- :func:`reference_documents`: the reference corpus (offline, seeded);
- :func:`file_documents`: local ``.txt`` files (one document per blank-line-separated
  paragraph) and ``.jsonl`` files (one document per line, from a text field);
- :func:`hf_documents`: a Hugging Face ``datasets`` name, streamed (needs the hub).

:func:`pack` (from :mod:`interp.packing`) concatenates documents, separated by BOS, and cuts
the stream into contexts of ``ctx_len`` tokens whose first token is BOS, as SAELens and
TransformerLens' ``tokenize_and_concatenate`` do. :func:`token_batches` is the one call most
code needs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from jaxtyping import Int
from torch import Tensor

from interp.errors import ConfigError
from interp.packing import batched, pack

__all__ = ["batched", "documents", "file_documents", "hf_documents", "pack", "reference_documents", "token_batches"]


def reference_documents(tokenizer, seed: int = 0, mixture: dict[str, float] | None = None) -> Iterator[list[int]]:
    """Endless reference-corpus documents as token ids (no text round trip)."""
    from interp.reference.corpus import token_ids

    return token_ids(tokenizer, seed=seed, mixture=mixture)


def file_documents(paths: Sequence[str | Path], tokenizer, text_field: str = "text", seed: int | None = None) -> Iterator[list[int]]:
    """Documents from local .txt / .jsonl files, in file order or shuffled by ``seed``."""
    texts: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise FileNotFoundError(f"no such data file: {path}")
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    if text_field not in record:
                        raise KeyError(
                            f"{path}:{number} has no field {text_field!r} (fields: {sorted(record)}); "
                            "pass text_field= to name the field that holds the text"
                        )
                    texts.append(record[text_field])
        elif path.suffix == ".txt":
            content = path.read_text(encoding="utf-8")
            texts.extend(p.strip() for p in content.split("\n\n") if p.strip())
        else:
            raise ConfigError(f"{path}: unsupported file type {path.suffix!r}; use .txt or .jsonl")
    if seed is not None:
        random.Random(seed).shuffle(texts)
    for text in texts:
        yield tokenizer(text, add_special_tokens=False)["input_ids"]


def hf_documents(name: str, tokenizer, split: str = "train", text_field: str = "text", seed: int | None = None, config: str | None = None) -> Iterator[list[int]]:
    """Documents streamed from a Hugging Face dataset (needs the hub or a local dataset cache)."""
    import datasets

    dataset = datasets.load_dataset(name, config, split=split, streaming=True)
    if seed is not None:
        dataset = dataset.shuffle(seed=seed, buffer_size=10_000)
    for record in dataset:
        yield tokenizer(record[text_field], add_special_tokens=False)["input_ids"]


def documents(source: str | Sequence[str | Path], tokenizer, seed: int = 0) -> Iterator[list[int]]:
    """Documents from ``"reference"``, local file paths, or a Hugging Face dataset name."""
    if isinstance(source, str) and source == "reference":
        return reference_documents(tokenizer, seed=seed)
    if not isinstance(source, str):
        return file_documents(source, tokenizer, seed=seed)
    if Path(source).exists():
        return file_documents([source], tokenizer, seed=seed)
    return hf_documents(source, tokenizer, seed=seed)


def token_batches(source: str | Sequence[str | Path], tokenizer, ctx_len: int, batch_size: int, seed: int = 0) -> Iterator[Int[Tensor, "batch ctx"]]:
    """BOS-led ``(batch_size, ctx_len)`` token batches from a source, deterministic for ``seed``."""
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ConfigError("the tokenizer has no BOS token; set tokenizer.bos_token before packing")
    return batched(pack(documents(source, tokenizer, seed=seed), ctx_len, bos), batch_size)
