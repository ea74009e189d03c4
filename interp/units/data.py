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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jaxtyping import Bool, Int
from torch import Tensor

from interp.data import has_reference_vocab
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


def labelled_data(model, n_contexts: int = 128, ctx_len: int | None = None, seed: int = 1, data: str = "reference",
                  *, dataset: str | None = None) -> UnitData:
    """``n_contexts`` BOS-led contexts for :func:`interp.units.compare_units`, with class masks.

    With the reference vocabulary and ``data="reference"``, the corpus labels define the
    classes; otherwise classes are the semantic-class words found as single tokens (the
    reference corpus is read as plain text, :func:`interp.data.reference_documents`).
    ``dataset`` is the deprecated name of ``data``.
    """
    from interp.data import data_option, load_contexts

    data = data_option(data, dataset)
    if n_contexts < 1:
        raise ConfigError(f"n_contexts must be >= 1, got {n_contexts}")
    tokenizer = model.tokenizer
    ctx_len = ctx_len or model.cfg.n_ctx
    if data == "reference" and has_reference_vocab(tokenizer):
        from interp.codebooks.search import labelled_contexts

        labelled = labelled_contexts(tokenizer, n_contexts, ctx_len, seed=seed)
        classes, groups = reference_classes(labelled.tokens, labelled.labels, tokenizer)
        return UnitData(labelled.tokens, classes, groups, "corpus labels")
    tokens = load_contexts(data, tokenizer, n_contexts, ctx_len, seed=seed)
    classes, groups = token_classes(tokens, tokenizer)
    return UnitData(tokens, classes, groups, "token identity")


def load_transcoders(run: str | Path, device: str | None = None) -> dict[int, object]:
    """Deprecated: :func:`interp.transcoders.load_run` (same result)."""
    from interp._deprecation import warn
    from interp.transcoders.loading import load_run

    warn("interp.units.load_transcoders", "interp.transcoders.load_run")
    return load_run(run, device=device or "cpu")


def load_codebooks(runs: Sequence[str | Path], device: str | None = None, model=None):
    """The codebooks of several ``interp codebook train`` runs (model frozen) merged into one set.

    Raises :class:`~interp.errors.StoreError` for a run that fine-tuned the model: its codes
    belong to other weights than the model the neurons and transcoders are measured on,
    for a run trained on another model than ``model`` (when given; its fingerprint differs),
    and for two runs with a codebook at the same hook point.
    """
    from interp.models import check_fingerprint

    from interp.codebooks.insert import CODEBOOKS_CONFIG, Codebooks
    from interp.errors import StoreError

    configs, weights = {}, {}
    for run in runs:
        meta_path = Path(run) / CODEBOOKS_CONFIG
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if model is not None and meta:
            check_fingerprint(meta.get("model_fingerprint"), model, what=f"the codebooks in {run}", error=StoreError,
                              fix="compare them on the model they were trained on")
        if meta.get("fine_tuned"):
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

