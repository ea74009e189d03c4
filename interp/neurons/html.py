"""HTML for neuron decoding, clamping, semantic classes and model comparison.

Two kinds of output, both built from :mod:`interp.reports` and both offline (no CDN):

- full pages (``*_page``), returned by the results' ``to_html()``: plotly charts with
  plotly.js inlined once, and the searchable neuron table;
- compact notebook summaries (``*_summary``), returned by ``_repr_html_``: the headline
  numbers, a short table and a small static SVG chart, a few kilobytes and no scripts.

Rendering is separate from computing: every function takes a result object. The old
names (``decode_report``, ``class_report_html``, ``clamp_report``, ``comparison_report``)
still work and warn; use the results' ``to_html()``.
"""

from __future__ import annotations

import html

from interp._deprecation import renamed
from interp.reports import PROMOTED as _POS
from interp.reports import SUPPRESSED as _NEG
from interp.reports import figures_html, neuron_table_html, page, section, summary_html
from interp.reports.charts import bar_svg, histogram_counts, line_svg
from interp.reports.tables import layer_numbers, token_text
from interp.reports.tables import table as html_table
from interp.reports.tables import token_chips as _tokens

_SCORES = ("Scores are direct logit contributions per unit activation through the final norm's weight and W_U "
           "(the norm's scale and all biases left out; see docs/neurons.md).")


# --- decoded neurons -------------------------------------------------------------------


def decode_page(table, max_rows: int = 5000, classes=None) -> str:
    """Histogram of each neuron's top score by layer, the semantic classes (when given), and the table."""
    import plotly.graph_objects as go

    hist = go.Figure()
    for layer in sorted(set(table.layer.tolist())):
        hist.add_trace(go.Histogram(x=table.top_values[table.layer == layer, 0].tolist(), name=f"layer {layer}", opacity=0.6))
    hist.update_layout(title="top-1 score per neuron (logit per unit activation)", barmode="overlay", height=350)
    figures = [hist]
    sections = [section("Decoded neurons", neuron_table_html(table, max_rows))]
    if classes is not None:
        figures.append(_classes_figure(classes))
        sections.insert(0, section("Strongest neurons per class", _classes_grid(classes)))
    return page(
        "Neuron decoding",
        [f"<p>{_SCORES}</p>", figures_html(figures), *sections],
        model=table.model_name,
        settings={"neurons": len(table), "side": table.side, "k": table.k, "method": table.meta.get("method")},
    )


def neuron_table_summary(table, n_rows: int = 10) -> str:
    """The notebook view of a :class:`~interp.neurons.NeuronTable`: its size, its first rows, a score histogram."""
    rows = [("neurons", len(table)), ("layers", layer_numbers(table.layer.tolist())), ("side", table.side),
            ("k", table.k), ("model", table.model_name)]
    if "method" in table.meta:
        rows.append(("method", table.meta["method"]))
    if len(table):
        rows.append(("largest top-1 score", float(table.top_values[:, 0].max())))
    shown = [(str(int(table.layer[i])), str(int(table.neuron[i])), _tokens(table.top_tokens(i, 5), _POS),
              float(table.top_values[i, 0]), _tokens(table.bottom_tokens(i, 5), _NEG))
             for i in range(min(len(table), n_rows))]
    header = ["layer", "neuron", "top 5 (promoted)", "top score", "bottom 5 (suppressed)"]
    grid = html_table(header, shown, ".3f") if shown else None
    chart = None
    if len(table) >= 50:
        labels, counts = histogram_counts(table.top_values[:, 0].tolist())
        chart = bar_svg(labels, counts, title="top-1 score per neuron", y_label="neurons")
    more = f"first {n_rows} of {len(table):,} rows; " if len(table) > n_rows else ""
    return summary_html("NeuronTable", rows, chart, table=grid,
                        note=f"{more}search(...) filters by token, to_html() gives the searchable report")


# --- semantic classes ------------------------------------------------------------------


def _classes_figure(classes):
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=list(classes.counts), y=list(classes.counts.values())))
    fig.update_layout(title=f"neurons whose top {classes.top} tokens are all in one class", height=350)
    return fig


def _classes_grid(classes) -> str:
    rows = [(cls, f"L{n.layer}N{n.neuron}", _tokens(n.tokens), n.strength)
            for cls, neurons in classes.neurons.items() for n in neurons[:10]]
    return html_table(["class", "neuron", "top tokens", "strength"], rows, ".3f")


def classes_page(classes) -> str:
    """Counts per class and the ten strongest neurons of each."""
    return page(
        "Semantic-class neurons",
        [figures_html([_classes_figure(classes)]), section("Strongest neurons per class", _classes_grid(classes))],
        settings={"neurons decoded": classes.n_neurons, "top": classes.top, "side": classes.side},
    )


def classes_summary(report) -> str:
    """The notebook view of :class:`~interp.neurons.SemanticClasses`: counts per class and the strongest neurons."""
    rows = [("neurons decoded", report.n_neurons), ("in a class", report.n_class_neurons),
            ("classes", len(report.counts)), ("rule", f"top {report.top} {report.side}-side tokens all in the class")]
    grid = []
    for cls, count in sorted(report.counts.items(), key=lambda item: -item[1]):
        best = report.neurons[cls][0] if report.neurons.get(cls) else None
        grid.append((cls, count, f"L{best.layer}N{best.neuron}" if best else None,
                     _tokens(best.tokens) if best else None, best.strength if best else None))
    chart = bar_svg(list(report.counts), list(report.counts.values()), title="neurons per class", y_label="neurons")
    return summary_html("SemanticClasses", rows, chart or None,
                        table=html_table(["class", "neurons", "strongest", "its top tokens", "strength"], grid, ".3f"),
                        note="strongest(cls) gives a class's best neuron; to_html() the full report")


# --- clamp tests -----------------------------------------------------------------------


def clamp_page(results) -> str:
    """Per clamped neuron (one or several :class:`~interp.neurons.ClampResult`): the effect on its
    targets against the random-neuron distribution."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for r in results:
        label = f"L{r.layer}N{r.neuron}"
        fig.add_trace(go.Box(y=r.random_delta, name=label, boxpoints="all", marker_color="#999", showlegend=False))
        fig.add_trace(go.Scatter(x=[label], y=[r.mean_delta], mode="markers", marker={"size": 14, "color": _NEG},
                                 name=f"{label} (clamped neuron)"))
    fig.update_layout(title="change in mean log-prob of the decoded tokens: neuron (red) vs random neurons (grey)",
                      yaxis_title="delta log-prob", height=450)
    items = "".join(f"<li>{html.escape(r.summary())}</li>" for r in results)
    return page("Neuron clamp test", [figures_html([fig]), f"<ul>{items}</ul>"])


def clamp_summary(result) -> str:
    """The notebook view of a :class:`~interp.neurons.ClampResult`: the effect against random neurons."""
    rows = [
        ("neuron", f"L{result.layer}N{result.neuron}"),
        ("clamped to", result.value),
        ("targets", _tokens(result.targets[:5])),
        ("targets' log-prob change", f"{result.mean_delta:+.4f}"),
        (f"random neurons (mean of {len(result.random_delta)})", f"{result.mean_random_delta:+.4f}"),
        ("beats random neurons", f"{result.percentile:.0%}"),
        (f"p({token_text(result.targets[0])!r})", f"{result.baseline_prob:.4f} \u2192 {result.clamped_prob:.4f}"),
    ]
    chart = None
    if result.random_delta:
        n = len(result.random_delta)
        chart = line_svg({"random neurons, sorted": sorted(result.random_delta), "this neuron": [result.mean_delta] * n},
                         title="log-prob change of the targets", y_label="delta log-prob") or None
    return summary_html("ClampResult", rows, chart, note="to_html() for the full report")


# --- model comparison ------------------------------------------------------------------


def _comparison_rows(comparison) -> list[tuple]:
    return [(layer, u, o) for layer, u, o in zip(comparison.layers, comparison.unchanged, comparison.overlap)]


def comparison_page(comparison) -> str:
    """Per layer, the fraction of neurons with an unchanged top-1 token and the top-k overlap."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(x=comparison.layers, y=comparison.unchanged, name="top-1 unchanged"),
                     go.Bar(x=comparison.layers, y=comparison.overlap, name="top-k overlap")])
    fig.update_layout(title=f"{comparison.model_a} vs {comparison.model_b}", xaxis_title="layer",
                      yaxis_title="fraction of neurons", barmode="group", height=380)
    grid = html_table(["layer", "top-1 unchanged", "top-k overlap"], _comparison_rows(comparison), ".3f")
    return page("Neuron decoding: model comparison", [figures_html([fig]), section("Per layer", grid)],
                settings={"models": f"{comparison.model_a} vs {comparison.model_b}", "side": comparison.side})


def comparison_summary(comparison) -> str:
    """The notebook view of a :class:`~interp.neurons.ModelComparison`."""
    rows = [("models", f"{comparison.model_a} vs {comparison.model_b}"), ("side", comparison.side),
            ("top-1 unchanged (all layers)", comparison.mean_unchanged)]
    chart = bar_svg([str(layer) for layer in comparison.layers], comparison.unchanged,
                    title="top-1 unchanged by layer", y_label="fraction")
    return summary_html("ModelComparison", rows, chart or None,
                        table=html_table(["layer", "top-1 unchanged", "top-k overlap"], _comparison_rows(comparison), ".3f"))


# --- old names -------------------------------------------------------------------------

decode_report = renamed("decode_report", decode_page, "NeuronTable.to_html() or DecodeResult.to_html()")
class_report_html = renamed("class_report_html", classes_page, "SemanticClasses.to_html()")
clamp_report = renamed("clamp_report", clamp_page, "ClampResult.to_html() (interp.neurons.html.clamp_page for several)")
comparison_report = renamed("comparison_report", comparison_page, "ModelComparison.to_html()")
