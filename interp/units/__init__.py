"""Which is the better unit of an MLP layer: neurons, transcoder latents or codebook codes?

::

    from interp import units
    data = units.labelled_data(model, n_contexts=128)          # reference corpus, a label per token
    result = units.compare_units(model, data.tokens, data.classes, groups=data.groups,
                                 transcoders={0: tc0}, codebooks=books)
    result.summary(); result.markdown(); result.write("runs/units/report")  # units.json + units.html

or, from trained run directories as ``interp units`` does,
``units.run(units.UnitsRunConfig(transcoders="runs/units/transcoders"))``.

Measures (L0 per token, faithfulness, specificity) are defined in
:mod:`interp.units.compare`; see docs/units.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp._lazy import lazy_exports

_LAZY = {
    "UnitsConfig": "interp.units.compare",
    "compare_units": "interp.units.compare",
    "KINDS": "interp.units.compare",
    "UnitsComparison": "interp.units.result",
    "UnitRow": "interp.units.result",
    "ClassRow": "interp.units.result",
    "ClassMatch": "interp.units.measures",
    "best_precision_at_recall": "interp.units.measures",
    "reference_classes": "interp.units.measures",
    "token_classes": "interp.units.measures",
    "SEMANTIC_LABELS": "interp.units.measures",
    "UnitsRunConfig": "interp.units.runs",
    "compare_runs": "interp.units.runs",
    "run": "interp.units.runs",
    "UnitData": "interp.units.data",
    "labelled_data": "interp.units.data",
    "load_transcoders": "interp.units.data",
    "load_codebooks": "interp.units.data",
}

if TYPE_CHECKING:
    from interp.units.compare import KINDS, UnitsConfig, compare_units
    from interp.units.data import UnitData, labelled_data, load_codebooks, load_transcoders
    from interp.units.measures import (
        SEMANTIC_LABELS,
        ClassMatch,
        best_precision_at_recall,
        reference_classes,
        token_classes,
    )
    from interp.units.result import ClassRow, UnitRow, UnitsComparison
    from interp.units.runs import UnitsRunConfig, compare_runs, run


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "KINDS",
    "SEMANTIC_LABELS",
    "ClassMatch",
    "ClassRow",
    "UnitData",
    "UnitRow",
    "UnitsComparison",
    "UnitsConfig",
    "UnitsRunConfig",
    "best_precision_at_recall",
    "compare_runs",
    "compare_units",
    "labelled_data",
    "load_codebooks",
    "load_transcoders",
    "reference_classes",
    "run",
    "token_classes",
]
