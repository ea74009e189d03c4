"""The tokens and classes a units comparison runs on.

:func:`labelled_data` picks what a model allows: for a model with the reference
vocabulary, contexts of the reference corpus with the corpus's label of every token
(:func:`interp.units.measures.reference_classes`: semantic classes and FSM states);
for any other tokenizer (GPT-2), text (the reference corpus rendered as plain text, a
local file or a Hugging Face dataset) with classes by token identity
(:func:`interp.units.measures.token_classes`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from jaxtyping import Bool, Int
from torch import Tensor

from interp.errors import ConfigError
from interp.units.measures import reference_classes, token_classes


@dataclass
class UnitData:
    """Tokens, class masks over them, and the groups the classes fall in."""

    tokens: Int[Tensor, "n ctx"]
    classes: dict[str, Bool[Tensor, "n ctx"]]
    groups: dict[str, list[str]]
    source: str
    """How the classes were made: ``corpus labels`` or ``token identity``."""


def has_reference_vocab(tokenizer) -> bool:
    """True when every reference-corpus token is in the tokenizer's vocabulary."""
    from interp.reference import vocab as V

    vocab = tokenizer.get_vocab()
    return all(t in vocab for t in V.all_tokens())


def labelled_data(model, n_contexts: int = 128, ctx_len: int | None = None, seed: int = 1, dataset: str = "reference") -> UnitData:
    """``n_contexts`` BOS-led contexts for :func:`interp.units.compare_units`, with class masks.

    With the reference vocabulary and ``dataset="reference"``, the corpus labels define the
    classes; otherwise classes are the semantic-class words found as single tokens.
    """
    if n_contexts < 1:
        raise ConfigError(f"n_contexts must be >= 1, got {n_contexts}")
    tokenizer = model.tokenizer
    ctx_len = ctx_len or model.cfg.n_ctx
    if dataset == "reference" and has_reference_vocab(tokenizer):
        from interp.codebooks.search import labelled_contexts

        data = labelled_contexts(tokenizer, n_contexts, ctx_len, seed=seed)
        classes, groups = reference_classes(data.tokens, data.labels, tokenizer)
        return UnitData(data.tokens, classes, groups, "corpus labels")
    from interp.data import batched, pack, token_batches

    if dataset == "reference":
        tokens = next(batched(pack(_reference_text(tokenizer, seed), ctx_len, tokenizer.bos_token_id), n_contexts))
    else:
        tokens = next(token_batches(dataset, tokenizer, ctx_len, n_contexts, seed=seed))
    classes, groups = token_classes(tokens, tokenizer)
    return UnitData(tokens, classes, groups, "token identity")


def _reference_text(tokenizer, seed: int) -> Iterator[list[int]]:
    """Reference-corpus documents as plain text, tokenized by ``tokenizer`` (any vocabulary)."""
    from interp.reference import vocab as V
    from interp.reference.corpus import CorpusGenerator

    for doc in CorpusGenerator(seed=seed):
        text = "".join(doc.tokens).replace(V.SPACE, " ").strip()
        yield tokenizer(text, add_special_tokens=False)["input_ids"]


def load_transcoders(run: str | Path, device: str | None = None) -> dict[int, object]:
    """Deprecated: :func:`interp.transcoders.load_run` (same result)."""
    from interp._deprecation import warn
    from interp.transcoders.loading import load_run

    warn("interp.units.load_transcoders", "interp.transcoders.load_run")
    return load_run(run, device=device or "cpu")


def load_codebooks(runs: Sequence[str | Path], device: str | None = None):
    """The codebooks of several ``interp codebook train`` runs (model frozen) merged into one set.

    Raises :class:`~interp.errors.StoreError` for a run that fine-tuned the model: its codes
    belong to other weights than the model the neurons and transcoders are measured on,
    and for two runs with a codebook at the same hook point.
    """
    from interp.codebooks.insert import CODEBOOKS_CONFIG, Codebooks
    from interp.errors import StoreError

    configs, weights = {}, {}
    for run in runs:
        meta_path = Path(run) / CODEBOOKS_CONFIG
        if meta_path.is_file() and json.loads(meta_path.read_text()).get("fine_tuned"):
            raise StoreError(
                f"{run}: these codebooks were trained with the model fine-tuned, so they belong to other weights; "
                "train them with --freeze-model true to compare them with the model's neurons"
            )
        books = Codebooks.load(run)
        for hook, book in books.items():
            if hook in configs:
                raise StoreError(f"two codebook runs have a codebook at {hook}; pass one run per hook point")
            configs[hook], weights[hook] = book.cfg, book.codebook.detach()
    merged = Codebooks(configs)
    for hook, book in merged.items():
        book.codebook.data.copy_(weights[hook])
    return merged.to(device) if device else merged


__all__ = ["UnitData", "has_reference_vocab", "labelled_data", "load_codebooks", "load_transcoders"]

