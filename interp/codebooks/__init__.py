"""Codebook bottlenecks (Tamkin, Taufeeque & Goodman 2023): train, search and steer discrete codes.

Submodules load lazily::

    from interp import codebooks
    books = codebooks.Codebooks.create(model, ["mlp_out"], layers=[1], n_codes=96, k=1)
    with codebooks.inserted(model, books) as run:
        model(tokens)

The command line's analyses are functions of a config: :func:`train` (``interp codebook
train``), :func:`run_summary` (``interp codebook report``) and :func:`run_search`
(``interp codebook search``). See docs/codebooks.md.
"""

from __future__ import annotations

from interp._lazy import lazy_exports

_LAZY = {
    "Bottleneck": "interp.codebooks.bottleneck",
    "BottleneckConfig": "interp.codebooks.bottleneck",
    "Codebooks": "interp.codebooks.insert",
    "CodebookRun": "interp.codebooks.insert",
    "inserted": "interp.codebooks.insert",
    "CODEBOOK_SITES": "interp.codebooks.insert",
    "CodebookTrainConfig": "interp.codebooks.training",
    "CodebookTrainResult": "interp.codebooks.training",
    "train": "interp.codebooks.training",
    "train_codebooks": "interp.codebooks.training",
    "lm_loss": "interp.codebooks.training",
    "load_trained": "interp.codebooks.training",
    "CodeRecord": "interp.codebooks.search",
    "CodeMatch": "interp.codebooks.search",
    "CodeSearchConfig": "interp.codebooks.search",
    "CodeSearchResult": "interp.codebooks.search",
    "run_search": ("interp.codebooks.search", "run"),
    "record_run": "interp.codebooks.search",
    "collect_codes": "interp.codebooks.search",
    "labelled_contexts": "interp.codebooks.search",
    "precision_recall": "interp.codebooks.search",
    "match_property": "interp.codebooks.search",
    "property_mask": "interp.codebooks.search",
    "best_neuron_at_recall": "interp.codebooks.search",
    "code_top_tokens": "interp.codebooks.search",
    "generate_with_codes": "interp.codebooks.steer",
    "next_token_shift": "interp.codebooks.steer",
    "js_divergence": "interp.codebooks.steer",
    "CodebookSummary": "interp.codebooks.summary",
    "CodebookSummaryConfig": "interp.codebooks.summary",
    "summarize_codes": "interp.codebooks.summary",
    "run_summary": ("interp.codebooks.summary", "run"),
    # former names, kept working
    "CodebookReport": "interp.codebooks.summary",
    "build_report": "interp.codebooks.summary",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = list(_LAZY)
