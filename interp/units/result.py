"""The units comparison's result: rows per layer and kind, per-class detail, table and report.

:class:`UnitsComparison` is plain data (``save``/``load`` JSON); :meth:`UnitsComparison.markdown`
is the table docs/units.md shows, :meth:`UnitsComparison.to_html` the self-contained
report (plotly inlined once, opens offline).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from interp.io import atomic_write_json

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
class UnitsComparison:
    """Neurons vs transcoder latents vs codebook codes per MLP layer (see :mod:`interp.units.compare`)."""

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

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, asdict(self), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> UnitsComparison:
        raw = json.loads(Path(path).read_text())
        raw["rows"] = [UnitRow(**r) for r in raw["rows"]]
        raw["classes"] = [ClassRow(**c) for c in raw["classes"]]
        return cls(**raw)

    # --- text ------------------------------------------------------------------------

    def _columns(self) -> list[tuple[str, list]]:
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
        columns = self._columns()
        lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
        for i in range(len(self.rows)):
            lines.append("| " + " | ".join(col[i] for _, col in columns) + " |")
        return "\n".join(lines)

    def table(self) -> str:
        """The comparison as a plain-text table."""
        columns = self._columns()
        widths = [max(len(h), *(len(c) for c in col)) for h, col in columns]
        lines = [f"clean CE {self.ce_clean:.4f} on {self.n_positions} positions of {self.model}",
                 "  ".join(h.ljust(w) for (h, _), w in zip(columns, widths))]
        for i in range(len(self.rows)):
            lines.append("  ".join(col[i].ljust(w) for (_, col), w in zip(columns, widths)))
        return "\n".join(lines)

    def __repr__(self) -> str:
        from interp.reports import brief, plain_repr

        lines = []
        for kind in self.kinds:
            rows = [r for r in self.rows if r.kind == kind]
            lines.append(f"{kind}: L0 {_mean(r.l0 for r in rows):.1f}, recovered {_mean(r.recovered for r in rows):.3f}, "
                         f"specificity {_mean(r.specificity for r in rows):.3f} (means over layers)")
        return plain_repr("UnitsComparison", f"model={self.model!r}, layers={brief(self.layers)}, "
                          f"positions={self.n_positions}, classes={len(self.base_rates)}", lines)

    # --- HTML ------------------------------------------------------------------------

    def _html_table(self) -> str:
        from interp.reports import table

        columns = self._columns()
        return table([h for h, _ in columns], [[col[i] for _, col in columns] for i in range(len(self.rows))])

    def _repr_html_(self) -> str:
        from interp.reports import bar_svg, summary_html

        labels = [f"L{r.layer} {r.kind[:2]}" for r in self.rows]
        chart = bar_svg(labels, [r.recovered for r in self.rows], title="CE gap recovered", width=420)
        return summary_html(
            "Units comparison: neurons vs transcoder latents vs codebook codes",
            {"model": self.model, "positions": self.n_positions, "clean CE": self.ce_clean, "classes": len(self.base_rates)},
            chart, table=self._html_table(), note="to_html() gives the full report with per-class detail",
        )

    def figures(self) -> list:
        """Plotly figures: the measures per layer and kind, and the best precision per class."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        panels = [("L0 per token (log)", "l0"), ("CE gap recovered", "recovered"), ("FVU", "fvu"), ("specificity (all classes)", "specificity")]
        fig = make_subplots(rows=2, cols=2, subplot_titles=[t for t, _ in panels])
        colours = {"neurons": "#1f77b4", "transcoder": "#ff7f0e", "codebook": "#2ca02c"}
        for i, (_, attr) in enumerate(panels):
            for kind in self.kinds:
                rows = [r for r in self.rows if r.kind == kind]
                fig.add_trace(
                    go.Bar(x=[f"layer {r.layer}" for r in rows], y=[getattr(r, attr) for r in rows], name=KIND_LABELS.get(kind, kind),
                           marker_color=colours.get(kind), showlegend=i == 0, legendgroup=kind),
                    row=i // 2 + 1, col=i % 2 + 1,
                )
        fig.update_yaxes(type="log", row=1, col=1)
        fig.update_layout(barmode="group", height=620, title="Per layer and kind of unit")
        names = list(dict.fromkeys(c.cls for c in self.classes))
        columns = [(layer, kind) for layer in self.layers for kind in self.kinds]
        lookup = {(c.layer, c.kind, c.cls): c for c in self.classes}
        z = [[lookup[(layer, kind, n)].precision if (layer, kind, n) in lookup else None for layer, kind in columns] for n in names]
        heat = go.Figure(go.Heatmap(z=z, x=[f"L{layer} {kind}" for layer, kind in columns], y=names, zmin=0, zmax=1,
                                    colorscale="Viridis", colorbar={"title": "precision"}))
        heat.update_layout(title=f"Best unit's precision at recall >= {self.config.get('recall', 0.5)} per class",
                           height=max(400, 18 * len(names) + 150))
        return [fig, heat]

    def to_html(self) -> str:
        """The self-contained report: table, figures, per-class detail, definitions."""
        from interp.reports import figures_html, page, section, table

        detail = table(
            ["layer", "unit", "class", "positions", "base rate", "precision", "best unit", "threshold", "recall"],
            [[c.layer, c.kind, c.cls, c.positives, self.base_rates.get(c.cls, float("nan")), c.precision,
              c.unit, c.threshold, c.recall] for c in self.classes],
        )
        zero = ", ".join(f"layer {k}: {v:.4f}" for k, v in self.ce_zero.items())
        sections = [
            section("Comparison", self._html_table(),
                    note=f"Clean CE {self.ce_clean:.4f}; zero-ablated CE {zero}. Specificity: mean over classes of the "
                         "best unit's precision at its threshold for the recall (0 where no unit reaches it)."),
            section("Figures", figures_html(self.figures())),
            section("Per class", detail, note="Base rate: the precision of a unit that fires everywhere."),
            section("Definitions", f"<pre>{_definitions()}</pre>"),
        ]
        if self.metadata:
            import html

            sections.append(section("Provenance", f"<pre>{html.escape(json.dumps(self.metadata, indent=1))}</pre>"))
        settings = {"positions": self.n_positions, "contexts": self.n_contexts, "ctx_len": self.ctx_len, **self.config}
        return page("Units comparison: neurons vs transcoder latents vs codebook codes", sections, model=self.model,
                    settings=settings)


def _definitions() -> str:
    import html

    from interp.units import compare

    return html.escape((compare.__doc__ or "").strip())


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")
