"""Token streams from a data source, packed into fixed-length contexts that start with BOS.

A data source (the ``--data`` option of every command that reads text) is one of:

- ``"reference"``: the reference corpus (offline, seeded, endless). For a tokenizer with the
  reference vocabulary its token ids are used directly; for any other tokenizer (GPT-2's,
  Llama's, ...) each document is rendered as plain text (:func:`reference_texts`) and
  tokenized, so the default works with every model;
- local ``.txt`` files (one document per blank-line-separated paragraph) and ``.jsonl``
  files (one document per line, from a text field);
- a Hugging Face ``datasets`` name, streamed (needs the hub or a local dataset cache).

:func:`pack` (from :mod:`interp.packing`) concatenates documents, separated by BOS, and cuts
the stream into contexts of ``ctx_len`` tokens whose first token is BOS, as SAELens and
TransformerLens' ``tokenize_and_concatenate`` do. :func:`token_batches` is the one call most
code needs; :func:`load_contexts` takes an exact number of contexts. A source that cannot
give what was asked (a missing, empty or undecodable file, a ``.jsonl`` line without the
text field, an unsupported file type, fewer tokens than asked for) raises
:class:`~interp.errors.DataError` with one sentence saying what to pass instead.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from jaxtyping import Int
from torch import Tensor

from interp.errors import ConfigError, DataError
from interp.packing import batched, pack, pack_labelled

REFERENCE = "reference"
"""The name of the default data source, the reference corpus."""

SUFFIXES = (".txt", ".jsonl")
"""File types a local data source may have."""

_PATH_HINTS = (".json", ".csv", ".tsv", ".parquet", ".arrow", ".md", ".gz", ".zip", ".text")

Source = str | Path | Sequence[str | Path]


def has_reference_vocab(tokenizer) -> bool:
    """True when every reference-corpus token is in the tokenizer's vocabulary."""
    from interp.reference import vocab as V

    vocab = tokenizer.get_vocab()
    return all(t in vocab for t in V.all_tokens())


def reference_texts(seed: int = 0, mixture: dict[str, float] | None = None) -> Iterator[str]:
    """Endless reference-corpus documents rendered as plain text (what other tokenizers read)."""
    from interp.reference.corpus import CorpusGenerator

    for doc in CorpusGenerator(seed=seed, mixture=mixture):
        yield doc.text


def reference_documents(tokenizer, seed: int = 0, mixture: dict[str, float] | None = None) -> Iterator[list[int]]:
    """Endless reference-corpus documents as token ids of ``tokenizer``.

    With the reference vocabulary, the corpus's own tokens (no text round trip); with any
    other tokenizer, each document's text (:func:`reference_texts`) tokenized.
    """
    if has_reference_vocab(tokenizer):
        from interp.reference.corpus import token_ids

        return token_ids(tokenizer, seed=seed, mixture=mixture)
    return (_encode(tokenizer, text) for text in reference_texts(seed, mixture))


def labelled_reference_documents(
    tokenizer, seed: int = 0, mixture: dict[str, float] | None = None
) -> Iterator[tuple[list[int], list[str | None]]]:
    """Endless reference-corpus documents as ``(token ids, corpus label of each token)``.

    With the reference vocabulary every corpus token is one token. With another tokenizer
    the document's text is tokenized and each token takes the label of the corpus word its
    last character belongs to (a token spanning two words, e.g. one token " 1745" over the
    corpus's century " 17" and year "45", takes the later word's label; a token of spaces
    only has none). This needs a fast tokenizer, which reports character offsets.
    """
    from interp.reference import vocab as V
    from interp.reference.corpus import CorpusGenerator

    vocab = tokenizer.get_vocab()
    direct = has_reference_vocab(tokenizer)
    if not direct and not getattr(tokenizer, "is_fast", False):
        raise ConfigError("corpus labels for a tokenizer other than the reference one need a fast (Rust) tokenizer")
    for doc in CorpusGenerator(seed=seed, mixture=mixture):
        if direct:
            yield [vocab[t] for t in doc.tokens], list(doc.labels)
            continue
        text, char_labels = "", []
        for token, label in zip(doc.tokens, doc.labels):
            word = token.replace(V.SPACE, " ")
            if not text:
                word = word.lstrip()
            text += word
            char_labels += [None if ch == " " else label for ch in word]
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        labels = [char_labels[end - 1] if end > 0 else None for _, end in encoded["offset_mapping"]]
        yield list(encoded["input_ids"]), labels


def file_documents(paths: Sequence[str | Path], tokenizer, text_field: str = "text", seed: int | None = None) -> Iterator[list[int]]:
    """Documents from local .txt / .jsonl files, in file order or shuffled by ``seed``."""
    texts = [text for path in paths for text in _file_texts(Path(path), text_field)]
    if seed is not None:
        random.Random(seed).shuffle(texts)
    for text in texts:
        yield _encode(tokenizer, text)


def _file_texts(path: Path, text_field: str) -> list[str]:
    """The documents of one local file; :class:`DataError` when there are none to read."""
    if not path.exists():
        raise DataError(f"no such data file: {path}; pass an existing .txt or .jsonl file, 'reference', or a Hugging Face dataset name")
    if not path.is_file():
        raise DataError(f"{path} is not a file; pass a .txt or .jsonl file (or several as a list in Python)")
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; use .txt or .jsonl")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.start} cannot be decoded); convert it to UTF-8") from err
    if path.suffix == ".txt":
        texts = [p.strip() for p in content.split("\n\n") if p.strip()]
    else:
        texts = [_jsonl_text(path, number, line, text_field) for number, line in enumerate(content.splitlines(), 1) if line.strip()]
        texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(f"{path} holds no text; pass a file with at least one non-empty document")
    return texts


def _jsonl_text(path: Path, number: int, line: str, text_field: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{number} is not valid JSON ({err.msg}); each line of a .jsonl file is one JSON object") from err
    if not isinstance(record, dict):
        raise DataError(
            f"{path}:{number} is not a JSON object but a JSON {type(record).__name__}; each line of a .jsonl file is one "
            f"object with a {text_field!r} field"
        )
    if text_field not in record:
        raise DataError(
            f"{path}:{number} has no field {text_field!r} (fields: {sorted(record)}); "
            "give each line a 'text' field, or pass text_field= to name the field that holds the text"
        )
    if not isinstance(record[text_field], str):
        raise DataError(f"{path}:{number}: field {text_field!r} is not a string (it is {type(record[text_field]).__name__})")
    return record[text_field]


def hf_documents(name: str, tokenizer, split: str = "train", text_field: str = "text", seed: int | None = None, config: str | None = None) -> Iterator[list[int]]:
    """Documents streamed from a Hugging Face dataset (needs the hub or a local dataset cache)."""
    try:
        import datasets
    except ImportError as err:
        raise DataError(f"reading the Hugging Face dataset {name!r} needs `pip install datasets`; or pass a .txt/.jsonl file") from err
    try:
        dataset = datasets.load_dataset(name, config, split=split, streaming=True)
        if seed is not None:
            dataset = dataset.shuffle(seed=seed, buffer_size=10_000)
        records = iter(dataset)
        first = next(records, None)
    except Exception as err:  # datasets raises many kinds; the user needs one sentence
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise DataError(
            f"could not read the Hugging Face dataset {name!r} ({type(err).__name__}: {reason}), and there is no "
            f"local file or directory {name!r} either; pass 'reference', an existing .txt/.jsonl file, or a dataset "
            "that is reachable or in the local cache"
        ) from err
    if first is None:
        raise DataError(f"the Hugging Face dataset {name!r} (split {split!r}) is empty")
    if text_field not in first:
        raise DataError(f"the Hugging Face dataset {name!r} has no field {text_field!r} (fields: {sorted(first)})")
    yield _encode(tokenizer, first[text_field])
    for record in records:
        yield _encode(tokenizer, record[text_field])


def _encode(tokenizer, text: str) -> list[int]:
    # verbose=False: a document longer than the model's context is fine here (it is packed)
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def looks_like_path(source: str) -> bool:
    """True when ``source`` names a local file (an existing path, or one shaped like a path)."""
    if Path(source).exists() or source.startswith(("/", "./", "../", "~")):
        return True
    if source.count("/") > 1 or ("/" in source and Path(source).parent.is_dir()):  # a dataset is 'name' or 'org/name'
        return True
    return source.lower().endswith(SUFFIXES + _PATH_HINTS)


def documents(source: Source, tokenizer, seed: int = 0) -> Iterator[list[int]]:
    """Documents from ``"reference"``, local file paths, or a Hugging Face dataset name."""
    if isinstance(source, str) and source == REFERENCE:
        return reference_documents(tokenizer, seed=seed)
    if isinstance(source, Path):
        return file_documents([source], tokenizer, seed=seed)
    if not isinstance(source, str):
        return file_documents(source, tokenizer, seed=seed)
    if looks_like_path(source):
        return file_documents([Path(source).expanduser()], tokenizer, seed=seed)
    return hf_documents(source, tokenizer, seed=seed)


def describe(source: Source) -> str:
    """The source as a message names it: ``the reference corpus``, a file, or a dataset."""
    if isinstance(source, str) and source == REFERENCE:
        return "the reference corpus"
    if isinstance(source, (str, Path)):
        return str(source) if isinstance(source, Path) or looks_like_path(source) else f"the Hugging Face dataset {source!r}"
    return ", ".join(str(s) for s in source)


def short_message(source: Source, have: int, wanted: int, ctx_len: int) -> str:
    """The sentence of a :class:`DataError` for a source that ran out after ``have`` of ``wanted`` contexts."""
    return (
        f"{describe(source)} gives only {have:,} contexts of {ctx_len} tokens ({have * ctx_len:,} tokens), fewer than "
        f"the {wanted:,} contexts ({wanted * ctx_len:,} tokens) asked for: ask for at most {have * ctx_len:,} tokens, "
        "or pass more text with --data"
    )


def _exactly(contexts: Iterable[list[int]], wanted: int, source: Source, ctx_len: int) -> Iterator[list[int]]:
    """The first ``wanted`` contexts; :class:`DataError` when the stream ends before."""
    have = 0
    for row in contexts:
        yield row
        have += 1
        if have == wanted:
            return
    raise DataError(short_message(source, have, wanted, ctx_len))


def _bos(tokenizer) -> int:
    if tokenizer is None:
        raise ConfigError("the model has no tokenizer, so tokens cannot be read from --data; pass token tensors instead")
    if tokenizer.bos_token_id is None:
        raise ConfigError("the tokenizer has no BOS token; set tokenizer.bos_token before packing")
    return tokenizer.bos_token_id


def token_batches(
    source: Source, tokenizer, ctx_len: int, batch_size: int, seed: int = 0, n_batches: int | None = None
) -> Iterator[Int[Tensor, "batch ctx"]]:
    """BOS-led ``(batch_size, ctx_len)`` token batches from a source, deterministic for ``seed``.

    Without ``n_batches`` the stream ends with the source (never, for the reference corpus; a
    source shorter than one batch is a :class:`DataError`); with it, exactly ``n_batches``
    batches come out, or :class:`DataError` says the source is too short (raised when the
    iterator reaches its end).
    """
    bos = _bos(tokenizer)
    contexts = pack(documents(source, tokenizer, seed=seed), ctx_len, bos)
    if n_batches is not None:
        return batched(_exactly(contexts, n_batches * batch_size, source, ctx_len), batch_size)
    return _at_least_one_batch(contexts, batch_size, source, ctx_len)


def _at_least_one_batch(contexts: Iterable[list[int]], batch_size: int, source: Source, ctx_len: int) -> Iterator[Tensor]:
    """``batched(contexts, batch_size)``, refusing a source that does not fill one batch."""
    seen = 0

    def counted() -> Iterator[list[int]]:
        nonlocal seen
        for context in contexts:
            seen += 1
            yield context

    empty = True
    for batch in batched(counted(), batch_size):
        empty = False
        yield batch
    if empty:
        raise DataError(
            f"{describe(source)} gives only {seen} contexts of {ctx_len} tokens, fewer than one batch of {batch_size}: "
            "pass more text with --data, or a smaller --batch-size"
        )


def load_contexts(source: Source, tokenizer, n_contexts: int, ctx_len: int, seed: int = 0) -> Int[Tensor, "n ctx"]:
    """Exactly ``n_contexts`` BOS-led contexts of ``ctx_len`` tokens from a source, as one tensor.

    Raises :class:`DataError` with the numbers when the source holds fewer.
    """
    if n_contexts < 1:
        raise ConfigError(f"n_contexts must be at least 1, got {n_contexts}")
    return next(token_batches(source, tokenizer, ctx_len, n_contexts, seed=seed, n_batches=1))


def data_option(data: str | None, dataset: str | None, default: str | None = REFERENCE) -> str | None:
    """The data source of a config that still has the deprecated ``dataset`` field.

    ``dataset`` is the old name of ``data`` (``--dataset``, in transcoder train/eval, circuit
    trace and units): given alone it is used, with a :class:`DeprecationWarning`; given with a
    different ``data`` it is a :class:`~interp.errors.ConfigError`.
    """
    if dataset is None:
        return data
    if data != default and data != dataset:
        raise ConfigError(f"--dataset is the old name of --data: pass only --data (got --data {data!r} and --dataset {dataset!r})")
    warnings.warn("--dataset (dataset=) is deprecated: use --data (data=)", DeprecationWarning, stacklevel=3)
    return dataset


__all__ = [
    "REFERENCE", "batched", "data_option", "describe", "documents", "file_documents", "has_reference_vocab",
    "hf_documents", "labelled_reference_documents", "load_contexts", "looks_like_path", "pack", "pack_labelled",
    "reference_documents", "reference_texts", "short_message", "token_batches",
]
