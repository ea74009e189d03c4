"""The redundancy analysis as HTML: the full page and the compact notebook blocks.

:func:`render` turns a :class:`~interp.redundancy.result.RedundancyResult` into one
self-contained page (plotly's JavaScript inlined once, no CDN, so it opens offline);
:func:`compact`, :func:`importance_block` and :func:`curve_block` are the small static
blocks a notebook shows for a result, an :class:`~interp.redundancy.importance.Importance`
and a :class:`~interp.redundancy.dropping.DropCurve`. All are built with :mod:`interp.reports`.
"""

from __future__ import annotations

import html
import math

from interp.redundancy.importance import KINDS, METRICS, Module
from interp.reports import brief, figures_html, line_svg, page, section, summary_html, table

_COLOURS = {"attn": "#1f77b4", "mlp": "#ff7f0e", "block": "#2ca02c", "joint": "#d62728"}
_DASH = {"one-shot": "solid", "iterative": "dash"}


def figures(report) -> dict[str, object]:
    """The report's plotly figures by name (importance, single_drop, loss, tasks, speedup)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    layers = list(range(report.n_layers))
    imp = report.importance
    out: dict[str, object] = {}

    fig = make_subplots(rows=1, cols=2, subplot_titles=["1 − cos(input, input + output)", "1 − cos(normalised input, output)"])
    for col, metric in enumerate(METRICS, start=1):
        for kind in KINDS:
            fig.add_trace(
                go.Bar(x=layers, y=[imp.score(Module(kind, layer), metric) for layer in layers], name=kind,
                       marker_color=_COLOURS[kind], showlegend=col == 1, legendgroup=kind),
                row=1, col=col,
            )
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="importance", row=1, col=1)
    fig.update_layout(title="Importance by layer and kind (low = redundant)", barmode="group", height=420)
    out["importance"] = fig

    fig = go.Figure()
    for kind in KINDS:
        modules = [Module(kind, layer) for layer in layers]
        fig.add_trace(go.Scatter(
            x=[imp.score(m, imp.metric_for((kind,), report.metric)) for m in modules], y=[report.loss_increase(m) for m in modules],
            mode="markers+text", text=[str(m) for m in modules], textposition="top center", name=kind,
            marker={"color": _COLOURS[kind], "size": 10},
        ))
    fig.update_layout(title=f"Does importance ({report.metric}) predict the loss increase of dropping one module?",
                      xaxis_title="importance", yaxis_title="held-out loss increase", height=450)
    out["single_drop"] = fig

    strategies = list(dict.fromkeys(c.strategy for c in report.curves))
    fig = make_subplots(rows=1, cols=max(1, len(strategies)), subplot_titles=strategies, shared_yaxes=True)
    for col, strategy in enumerate(strategies, start=1):
        for curve in (c for c in report.curves if c.strategy == strategy):
            fig.add_trace(go.Scatter(
                x=[p.n_dropped for p in curve.points], y=[p.loss for p in curve.points], mode="lines+markers",
                name=f"{strategy} {curve.schedule}", line={"color": _COLOURS[strategy], "dash": _DASH[curve.schedule]},
                hovertext=[", ".join(p.dropped) for p in curve.points],
            ), row=1, col=col)
    fig.update_xaxes(title_text="modules dropped")
    fig.update_yaxes(title_text="held-out loss", row=1, col=1)
    fig.update_layout(title="Held-out loss vs modules dropped (solid: one-shot, dashed: iterative)", height=420)
    out["loss"] = fig

    task_names = sorted({k for c in report.curves for p in c.points if p.tasks for k in p.tasks})
    if task_names:
        cols = 3
        rows = math.ceil(len(task_names) / cols)
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=task_names)
        for i, task in enumerate(task_names):
            for curve in report.curves:
                fig.add_trace(go.Scatter(
                    x=[p.n_dropped for p in curve.points], y=[p.tasks[task] for p in curve.points], mode="lines+markers",
                    name=f"{curve.strategy} {curve.schedule}", legendgroup=f"{curve.strategy} {curve.schedule}",
                    showlegend=i == 0, line={"color": _COLOURS[curve.strategy], "dash": _DASH[curve.schedule]},
                ), row=i // cols + 1, col=i % cols + 1)
        fig.update_xaxes(title_text="modules dropped")
        fig.update_layout(title="Task metrics vs modules dropped", height=330 * rows)
        out["tasks"] = fig

    if any(p.speedup is not None for c in report.curves for p in c.points):
        fig = go.Figure()
        for curve in report.curves:
            fig.add_trace(go.Scatter(
                x=[p.n_dropped for p in curve.points], y=[p.speedup for p in curve.points], mode="lines+markers",
                name=f"{curve.strategy} {curve.schedule}", line={"color": _COLOURS[curve.strategy], "dash": _DASH[curve.schedule]},
            ))
        fig.update_layout(title="Forward-pass speed-up with the dropped modules really skipped (fastest time intact / skipped)",
                          xaxis_title="modules dropped", yaxis_title="speed-up (×)", height=420)
        out["speedup"] = fig
    return out


def render(report) -> str:
    """The whole report as an HTML document."""
    named = figures(report)
    plots = figures_html(list(named.values()), div_ids=[f"redundancy-{name}" for name in named])
    imp = report.importance
    imp_rows = [[layer] + [imp.score(Module(k, layer), m) for m in METRICS for k in KINDS] for layer in range(report.n_layers)]
    imp_header = ["layer"] + [f"{k} ({m})" for m in METRICS for k in KINDS]
    single_rows = [[f"{k}.{layer}", imp.score(Module(k, layer), imp.metric_for((k,), report.metric)),
                    report.loss_increase(Module(k, layer))] for k in KINDS for layer in range(report.n_layers)]
    corr_rows = [[group] + [values[m] for m in METRICS] for group, values in report.rank_correlation.items()]
    curve_rows = []
    for c in report.curves:
        last = c.points[-1]
        curve_rows.append([c.strategy, c.schedule, ", ".join(c.order), c.points[0].loss, last.loss,
                           max((p.skip_max_abs_diff or 0.0) for p in c.points) if last.skip_max_abs_diff is not None else None])
    intro = f"""<p>Importance = 1 − cosine similarity per token, averaged over {report.n_calibration_tokens} calibration tokens
(BOS {'counted' if imp.include_bos else 'not counted'}); held-out loss over {report.n_heldout_tokens} predicted tokens.
Baseline loss {report.baseline_loss:.4f}. Modules ranked by the <b>{html.escape(report.metric)}</b> metric. Dropping = zero-ablating
the module's output (identical to removing it and its norms).</p>""" + "".join(f"<p><b>Note:</b> {html.escape(note)}.</p>" for note in report.notes)
    return page(
        f"Redundancy of {report.model}",
        [
            intro,
            section("Importance", table(imp_header, imp_rows)),
            section("Dropping one module", table(["module", "importance", "loss increase"], single_rows)),
            section("Spearman rank correlation of importance with the loss increase",
                    table(["group"] + list(METRICS), corr_rows), level=3),
            section("Drop orders", table(["strategy", "schedule", "order", "loss (none)", "loss (all)",
                                          "max |skip − ablate| logits"], curve_rows)),
            section("Plots", plots),
        ],
        model=report.model,
        settings={k: v for k, v in report.settings.items() if not isinstance(v, (list, dict))},
    )


def compact(report) -> str:
    """The notebook block of a result: headline numbers, the drop curves' table and a static loss chart."""
    rows = [("model", report.model), ("layers", report.n_layers), ("baseline held-out loss", report.baseline_loss),
            ("calibration / held-out tokens", f"{report.n_calibration_tokens:,} / {report.n_heldout_tokens:,}"),
            (f"most redundant ({report.metric})", ", ".join(report.most_redundant())),
            ("Spearman(importance, loss increase)",
             ", ".join(f"{g} {v[report.metric]:+.3f}" for g, v in report.rank_correlation.items())),
            *(("note", note) for note in report.notes)]
    curves = table(["strategy", "schedule", "first dropped", "loss (none)", "loss (all)"],
                   [[c.strategy, c.schedule, ", ".join(c.order[:3]), c.points[0].loss, c.points[-1].loss]
                    for c in report.curves if c.points])
    longest = max((len(c.points) for c in report.curves), default=0)
    chart = line_svg({f"{c.strategy} {c.schedule}": [p.loss for p in c.points] + [float("nan")] * (longest - len(c.points))
                      for c in report.curves}, title="held-out loss vs modules dropped", x_label="modules dropped", log_y=True)
    return summary_html(f"Redundancy of {report.model}", rows, chart or None, table=curves,
                        note="to_html() for the full report with all plots")


def importance_block(imp) -> str:
    """The notebook block of an :class:`~interp.redundancy.importance.Importance`."""
    rows = [("layers", imp.n_layers), ("tokens", imp.n_tokens), ("BOS", "counted" if imp.include_bos else "not counted"),
            (f"most redundant ({imp.metric_for(('attn', 'mlp'))})", ", ".join(str(m) for m in imp.ranking()[:3])),
            *(("note", note) for note in imp.notes)]
    if imp.dropped:
        rows.append(("dropped while measuring", ", ".join(imp.dropped)))
    values = table(["layer", "attn", "mlp", "block", "attn (output)", "mlp (output)", "block (output)"],
                   [[layer, imp.attn[layer], imp.mlp[layer], imp.block[layer], imp.attn_output[layer],
                     imp.mlp_output[layer], imp.block_output[layer]] for layer in range(imp.n_layers)], ".5f", max_rows=48)
    chart = line_svg({"attn": imp.attn, "mlp": imp.mlp, "block": imp.block},
                     title="1 - cos(input, input + output) by layer", x_label="layer")
    return summary_html("Importance (low = redundant)", rows, chart or None, table=values)


def curve_block(curve) -> str:
    """The notebook block of a :class:`~interp.redundancy.dropping.DropCurve`."""
    rows = [("strategy", curve.strategy), ("schedule", curve.schedule), ("metric", curve.metric),
            ("order", brief(curve.order, 8))]
    points = table(["dropped", "module", "loss", "perplexity", "speed-up"],
                   [[p.n_dropped, p.dropped[-1] if p.dropped else "", p.loss, p.perplexity, p.speedup] for p in curve.points],
                   ["", "", ".4f", ".3f", ".2f"], max_rows=25)
    chart = line_svg({"loss": [p.loss for p in curve.points]}, [p.n_dropped for p in curve.points],
                     title="held-out loss vs modules dropped", x_label="modules dropped")
    return summary_html(f"Drop curve: {curve.strategy} ({curve.schedule})", rows, chart or None, table=points)
