"""The units comparison's result: rows per layer and kind, per-class detail, text tables.

:class:`UnitsComparison` is plain data on :class:`interp.results.Result` (``save``/``load``
JSON; ``write(out)`` gives ``units.json`` and ``units.html``); :meth:`UnitsComparison.summary`
is the text table the command line prints, :meth:`UnitsComparison.markdown` the table
docs/units.md shows; the HTML is rendered by :mod:`interp.units.html`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from interp.results import Result

KIND_LABELS = {"neurons": "MLP neurons", "transcoder": "transcoder latents", "codebook": "codebook codes"}


@dataclass
class UnitRow:
    """One kind of unit in one layer."""

    layer: int
    kind: str
    """``neurons``, ``transcoder`` or ``codebook``."""
    n_units: int
    """Units of this kind in the layer (d_mlp, d_sae, codes)."""
    l0: float
    """Mean active units per token (neurons: positive pre-activations)."""
    l0_above: float | None
    """Neurons only: mean activations above the neuron threshold per token."""
    kept: int | None
    """Neurons only: activations each token kept for the faithfulness measure."""
    ce: float
    """CE loss with the layer's MLP output replaced by this kind's reconstruction."""
    recovered: float
    """Fraction of the zero-ablation CE gap recovered."""
    fvu: float
    """Fraction of the MLP output's variance the reconstruction leaves unexplained."""
    specificity: float
    """Mean over all classes of the best unit's precision at the recall."""
    specificity_groups: dict[str, float] = field(default_factory=dict)
    """The same mean per group of classes."""


@dataclass
class ClassRow:
    """The best unit of a kind for one class in one layer."""

    layer: int
    kind: str
    cls: str
    positives: int
    precision: float
    unit: int
    """-1 when no unit of the kind reaches the recall on this class."""
    threshold: float | None
    """None when no unit of the kind reaches the recall on this class."""
    recall: float


@dataclass
class UnitsComparison(Result):
    """Neurons vs transcoder latents vs codebook codes per MLP layer (see :mod:`interp.units.compare`)."""

    stem: ClassVar[str] = "units"
    title: ClassVar[str] = "Units comparison"

    model: str
    n_contexts: int
    ctx_len: int
    n_positions: int
    """Positions measured (every token but each context's first)."""
    ce_clean: float
    ce_zero: dict[str, float]
    """Layer (as a string) -> CE loss with that layer's MLP output zeroed."""
    base_rates: dict[str, float]
    """Class -> fraction of positions in the class (the precision of a unit that fires everywhere)."""
    groups: dict[str, list[str]]
    rows: list[UnitRow]
    classes: list[ClassRow]
    config: dict
    metadata: dict = field(default_factory=dict)
    """Free-form provenance (how the transcoders and codebooks were trained, date, machine)."""

    # --- data ------------------------------------------------------------------------

    def row(self, layer: int, kind: str) -> UnitRow:
        for r in self.rows:
            if r.layer == layer and r.kind == kind:
                return r
        raise KeyError(f"no {kind!r} row for layer {layer}; rows: {[(r.layer, r.kind) for r in self.rows]}")

    @property
    def layers(self) -> list[int]:
        return sorted({r.layer for r in self.rows})

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(r.kind for r in self.rows))

    # --- text ------------------------------------------------------------------------

    def columns(self) -> list[tuple[str, list[str]]]:
        """The comparison's columns, ``(header, cells)``, one cell per row (what every table shows)."""
        groups = list(self.groups)
        header = ["layer", "unit", "units", "L0 / token", "CE loss", "recovered", "FVU"]
        header += [f"spec. {g}" for g in groups] + (["spec. all"] if len(groups) > 1 else [])
        body = []
        for r in self.rows:
            l0 = f"{r.l0:.1f}"
            if r.kind == "neurons":
                l0 += f" (>{self.config.get('neuron_threshold', 0.1):g}: {r.l0_above:.1f}; top-{r.kept} kept)"
            cells = [str(r.layer), KIND_LABELS.get(r.kind, r.kind), str(r.n_units), l0, f"{r.ce:.4f}",
                     f"{r.recovered:.3f}", f"{r.fvu:.3f}"]
            cells += [f"{r.specificity_groups.get(g, float('nan')):.3f}" for g in groups]
            if len(groups) > 1:
                cells.append(f"{r.specificity:.3f}")
            body.append(cells)
        return [(h, [row[i] for row in body]) for i, h in enumerate(header)]

    def markdown(self) -> str:
        """The comparison as a Markdown table (what docs/units.md shows)."""
        columns = self.columns()
        lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
        for i in range(len(self.rows)):
            lines.append("| " + " | ".join(col[i] for _, col in columns) + " |")
        return "\n".join(lines)

    def summary(self) -> str:
        """The comparison as a plain-text table (what ``interp units`` prints)."""
        columns = self.columns()
        widths = [max(len(h), *(len(c) for c in col)) for h, col in columns]
        lines = [f"clean CE {self.ce_clean:.4f} on {self.n_positions} positions of {self.model}",
                 "  ".join(h.ljust(w) for (h, _), w in zip(columns, widths))]
        for i in range(len(self.rows)):
            lines.append("  ".join(col[i].ljust(w) for (_, col), w in zip(columns, widths)))
        return "\n".join(lines)

    def table(self) -> str:
        """The older name of :meth:`summary`."""
        return self.summary()

    def __repr__(self) -> str:
        from interp.reports import brief, plain_repr

        lines = []
        for kind in self.kinds:
            rows = [r for r in self.rows if r.kind == kind]
            lines.append(f"{kind}: L0 {_mean(r.l0 for r in rows):.1f}, recovered {_mean(r.recovered for r in rows):.3f}, "
                         f"specificity {_mean(r.specificity for r in rows):.3f} (means over layers)")
        return plain_repr(type(self).__name__, f"model={self.model!r}, layers={brief(self.layers)}, "
                          f"positions={self.n_positions}, classes={len(self.base_rates)}", lines)

    # --- HTML (rendered by interp.units.html) ------------------------------------------

    def _repr_html_(self) -> str:
        from interp.units.html import compact

        return compact(self)

    def figures(self) -> list:
        """Plotly figures: the measures per layer and kind, and the best precision per class."""
        from interp.units.html import figures

        return figures(self)

    def to_html(self) -> str:
        """The self-contained report: table, figures, per-class detail, definitions."""
        from interp.units.html import render

        return render(self)


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")
