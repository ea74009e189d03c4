"""The units comparison as HTML: the full page and the compact notebook block (rendering only).

:func:`render` turns a :class:`~interp.units.result.UnitsComparison` into one
self-contained page (the comparison table, plotly figures with the library inlined once so
the file opens offline, the per-class detail and the definitions); :func:`compact` is the
block a notebook shows. Both are built with :mod:`interp.reports`.
"""

from __future__ import annotations

import html
import json

from interp.reports import bar_svg, figures_html, page, section, summary_html, table

TITLE = "Units comparison: neurons vs transcoder latents vs codebook codes"
_COLOURS = {"neurons": "#1f77b4", "transcoder": "#ff7f0e", "codebook": "#2ca02c"}


def comparison_table(result) -> str:
    """The comparison (one row per layer and kind) as an HTML table, the columns of ``summary()``."""
    columns = result.columns()
    return table([h for h, _ in columns], [[col[i] for _, col in columns] for i in range(len(result.rows))])


def figures(result) -> list:
    """Plotly figures: the measures per layer and kind, and the best precision per class."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from interp.units.result import KIND_LABELS

    panels = [("L0 per token (log)", "l0"), ("CE gap recovered", "recovered"), ("FVU", "fvu"), ("specificity (all classes)", "specificity")]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for t, _ in panels])
    for i, (_, attr) in enumerate(panels):
        for kind in result.kinds:
            rows = [r for r in result.rows if r.kind == kind]
            fig.add_trace(
                go.Bar(x=[f"layer {r.layer}" for r in rows], y=[getattr(r, attr) for r in rows], name=KIND_LABELS.get(kind, kind),
                       marker_color=_COLOURS.get(kind), showlegend=i == 0, legendgroup=kind),
                row=i // 2 + 1, col=i % 2 + 1,
            )
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(barmode="group", height=620, title="Per layer and kind of unit")
    names = list(dict.fromkeys(c.cls for c in result.classes))
    columns = [(layer, kind) for layer in result.layers for kind in result.kinds]
    lookup = {(c.layer, c.kind, c.cls): c for c in result.classes}
    z = [[lookup[(layer, kind, n)].precision if (layer, kind, n) in lookup else None for layer, kind in columns] for n in names]
    heat = go.Figure(go.Heatmap(z=z, x=[f"L{layer} {kind}" for layer, kind in columns], y=names, zmin=0, zmax=1,
                                colorscale="Viridis", colorbar={"title": "precision"}))
    heat.update_layout(title=f"Best unit's precision at recall >= {result.config.get('recall', 0.5)} per class",
                       height=max(400, 18 * len(names) + 150))
    return [fig, heat]


def render(result) -> str:
    """The self-contained page: table, figures, per-class detail, definitions, provenance."""
    detail = table(
        ["layer", "unit", "class", "positions", "base rate", "precision", "best unit", "threshold", "recall"],
        [[c.layer, c.kind, c.cls, c.positives, result.base_rates.get(c.cls, float("nan")), c.precision,
          c.unit, c.threshold, c.recall] for c in result.classes],
    )
    zero = ", ".join(f"layer {k}: {v:.4f}" for k, v in result.ce_zero.items())
    sections = [
        section("Comparison", comparison_table(result),
                note=f"Clean CE {result.ce_clean:.4f}; zero-ablated CE {zero}. Specificity: mean over classes of the "
                     "best unit's precision at its threshold for the recall (0 where no unit reaches it)."),
        section("Figures", figures_html(figures(result))),
        section("Per class", detail, note="Base rate: the precision of a unit that fires everywhere."),
        section("Definitions", f"<pre>{_definitions()}</pre>"),
    ]
    if result.metadata:
        sections.append(section("Provenance", f"<pre>{html.escape(json.dumps(result.metadata, indent=1))}</pre>"))
    settings = {"positions": result.n_positions, "contexts": result.n_contexts, "ctx_len": result.ctx_len, **result.config}
    return page(TITLE, sections, model=result.model, settings=settings)


def compact(result) -> str:
    """The notebook block: headline numbers, the comparison table and the CE gap recovered per row."""
    labels = [f"L{r.layer} {r.kind[:2]}" for r in result.rows]
    chart = bar_svg(labels, [r.recovered for r in result.rows], title="CE gap recovered", width=420)
    return summary_html(
        TITLE,
        {"model": result.model, "positions": result.n_positions, "clean CE": result.ce_clean, "classes": len(result.base_rates)},
        chart, table=comparison_table(result), note="to_html() gives the full report with per-class detail",
    )


def _definitions() -> str:
    from interp.units import compare

    return html.escape((compare.__doc__ or "").strip())


__all__ = ["compact", "comparison_table", "figures", "render"]
