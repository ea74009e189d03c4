"""HTML for MLP activation sparsity, top-k thresholding and CoreInfer core neurons.

Built from :mod:`interp.reports`, offline (no CDN):

- :func:`sparsity_page`, :func:`topk_page`, :func:`core_page`: full pages with plotly
  charts (plotly.js inlined once), returned by the results' ``to_html()``;
- ``*_summary``: the compact notebook views returned by ``_repr_html_``: headline
  numbers, a per-layer table and a small static SVG chart, no scripts.

Rendering is separate from computing: every function takes result objects from
:func:`interp.sparsity.measure`, :func:`interp.sparsity.topk_curve` and
:func:`interp.sparsity.core_similarity`. The old names (``sparsity_report``,
``topk_report``, ``core_report``) still work and warn; use the results' ``to_html()``.
"""

from __future__ import annotations

import math

from interp._deprecation import renamed
from interp.reports import (
    bar_svg,
    figures_html,
    histogram_counts,
    layer_numbers,
    line_svg,
    neuron_table_html,
    page,
    section,
    summary_html,
)
from interp.reports import table as html_table

_DENSITIES = ("nonzero", "positive", "above", "deft")


def _density_labels(result) -> dict[str, str]:
    return {"nonzero": "exact nonzero", "positive": "positive pre-activation",
            "above": f"activation > {result.threshold}", "deft": f"DEFT (eps {result.deft_eps})"}


def _layer_rows(result) -> list[tuple]:
    return [(str(s.layer), s.nonzero, s.positive, s.above, s.deft, s.dead, s.dense, f"{s.mean_active_per_token:.1f}")
            for s in result.layers]


def _layer_table(result) -> str:
    return html_table(["layer", "nonzero", "positive", f"> {result.threshold}", "DEFT", "dead", "dense", "active/token"],
                 _layer_rows(result), ".4f")


def _topk_rows(curve) -> list[tuple]:
    return [(str(k), round(k / curve.d_mlp, 4), loss, inc) for k, loss, inc in zip(curve.ks, curve.losses, curve.increase)]


def _topk_table(curve) -> str:
    return html_table(["k", "k / d_mlp", "loss", "increase"], _topk_rows(curve), ".4f")


def _core_table(core) -> str:
    rows = [(str(layer), round(s, 1), r, u) for layer, s, r, u in zip(core.layers, core.core_size, core.related, core.unrelated)]
    return html_table(["layer", "core size", "related", "unrelated"], rows, ".3f")


def _topk_figure(curve):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=curve.ks, y=curve.increase, mode="lines+markers"))
    fig.update_layout(title="loss increase when each token keeps only its k largest activations",
                      xaxis_title="k", xaxis_type="log", yaxis_title="loss - baseline", height=380)
    return fig


def _core_figure(core):
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(x=core.layers, y=core.related, name="related sentences"),
                     go.Bar(x=core.layers, y=core.unrelated, name="unrelated sentences")])
    fig.update_layout(title=f"Jaccard similarity of CoreInfer core sets (alpha {core.alpha}, beta {core.beta})",
                      xaxis_title="layer", height=380)
    return fig


# --- full pages ------------------------------------------------------------------------


def sparsity_page(result, curve=None, core=None, table=None) -> str:
    """Density by layer, frequency histograms, per-token counts and, when given, the top-k
    curve, the core similarity and a table of decoded neurons (a :class:`~interp.neurons.NeuronTable`)."""
    import plotly.graph_objects as go

    layers = [s.layer for s in result.layers]
    density = go.Figure()
    for key, label in _density_labels(result).items():
        density.add_trace(go.Bar(x=layers, y=[getattr(s, key) for s in result.layers], name=label))
    density.update_layout(title="activation density by layer", xaxis_title="layer", yaxis_title="fraction", height=380)
    freq = go.Figure()
    for s in result.layers:
        freq.add_trace(go.Histogram(x=s.frequency, name=f"layer {s.layer}", opacity=0.6, nbinsx=50))
    freq.update_layout(title="per-neuron frequency of a positive pre-activation (0 = dead)", barmode="overlay", height=380)
    counts = go.Figure()
    for s in result.layers:
        counts.add_trace(go.Scatter(x=list(range(len(s.token_counts))), y=s.token_counts, name=f"layer {s.layer}"))
    counts.update_layout(title="tokens by number of positive neurons", xaxis_title="positive neurons", height=380)
    figures = [density, freq, counts]
    sections = [section("Density by layer", _layer_table(result))]
    if curve is not None:
        figures.append(_topk_figure(curve))
        sections.append(section("Top-k thresholding", _topk_table(curve),
                                note=f"baseline loss {curve.baseline_loss:.4f} on {curve.n_tokens:,} tokens"))
    if core is not None:
        figures.append(_core_figure(core))
        sections.append(section("CoreInfer core neurons", _core_table(core),
                                note=f"{core.n_sentences} sentences in {core.n_groups} groups"))
    sections.append(figures_html(figures))
    if table is not None:
        sections.append(section("Decoded neurons", neuron_table_html(table)))
    n_tokens = result.layers[0].n_tokens if result.layers else 0
    return page(f"MLP activation sparsity: {result.model_name}", sections, model=result.model_name,
                settings={"tokens per layer": n_tokens, "threshold": result.threshold, "DEFT eps": result.deft_eps,
                          "dense above": result.dense_frequency, "BOS skipped": result.skip_first})


def topk_page(curve) -> str:
    """The top-k thresholding curve and its table."""
    return page("Top-k thresholding of MLP activations", [figures_html([_topk_figure(curve)]), _topk_table(curve)],
                model=curve.model_name,
                settings={"layers": layer_numbers(curve.layers), "d_mlp": curve.d_mlp, "tokens": curve.n_tokens,
                          "baseline loss": curve.baseline_loss})


def core_page(core) -> str:
    """Related vs unrelated core-set similarity by layer, and the table."""
    return page("CoreInfer core neurons", [figures_html([_core_figure(core)]), _core_table(core)], model=core.model_name,
                settings={"alpha": core.alpha, "beta": core.beta, "sentences": core.n_sentences, "groups": core.n_groups})


# --- notebook summaries ----------------------------------------------------------------


def sparsity_summary(result) -> str:
    """The notebook view of a :class:`~interp.sparsity.SparsityResult`."""
    labels = _density_labels(result)
    rows = [("model", result.model_name), ("layers", layer_numbers([s.layer for s in result.layers])),
            ("tokens per layer", result.layers[0].n_tokens if result.layers else 0)]
    rows += [(f"{labels[key]} (all layers)", result.mean(key)) for key in _DENSITIES]
    rows += [("dead neurons", sum(s.dead for s in result.layers)), ("dense neurons", sum(s.dense for s in result.layers))]
    chart = line_svg({key: [getattr(s, key) for s in result.layers] for key in ("positive", "above", "deft")},
                     [s.layer for s in result.layers], title="density by layer", x_label="layer", y_label="fraction")
    return summary_html("SparsityResult", rows, chart or None, table=_layer_table(result),
                        note="to_html() for frequency histograms and per-token counts")


def layer_summary(layer) -> str:
    """The notebook view of one :class:`~interp.sparsity.LayerSparsity`, with its neurons' frequency histogram."""
    rows = [("layer", str(layer.layer)), ("tokens", layer.n_tokens), ("neurons", len(layer.frequency)),
            ("exact nonzero", layer.nonzero), ("positive pre-activation", layer.positive), ("above threshold", layer.above),
            ("DEFT density", layer.deft), ("dead neurons", layer.dead), ("dense neurons", layer.dense),
            ("positive neurons per token", round(layer.mean_active_per_token, 1))]
    chart = None
    if layer.frequency:
        labels, counts = histogram_counts(layer.frequency, bins=10)
        chart = bar_svg(labels, counts, title="neurons by frequency of a positive pre-activation", y_label="neurons")
    return summary_html("LayerSparsity", rows, chart)


def topk_summary(curve) -> str:
    """The notebook view of a :class:`~interp.sparsity.TopKCurve`: loss increase against k."""
    rows = [("model", curve.model_name), ("layers", layer_numbers(curve.layers)), ("d_mlp", curve.d_mlp),
            ("tokens", curve.n_tokens), ("baseline loss", curve.baseline_loss)]
    if curve.ks:
        smallest = min(range(len(curve.ks)), key=lambda i: curve.ks[i])
        rows.append((f"increase at k = {curve.ks[smallest]}", f"{curve.increase[smallest]:+.4f}"))
    chart = line_svg(curve.increase, [math.log2(k) for k in curve.ks], title="loss increase against k",
                     x_label="log2 k", y_label="loss - baseline")
    return summary_html("TopKCurve", rows, chart or None, table=_topk_table(curve), note="to_html() for the full report")


def core_summary(core) -> str:
    """The notebook view of a :class:`~interp.sparsity.CoreSimilarity`: related vs unrelated sentences by layer."""
    rows = [("model", core.model_name), ("sentences", f"{core.n_sentences} in {core.n_groups} groups"),
            ("alpha, beta", f"{core.alpha}, {core.beta}"), ("related Jaccard (mean over layers)", core.mean_related),
            ("unrelated Jaccard (mean over layers)", core.mean_unrelated)]
    chart = line_svg({"related": core.related, "unrelated": core.unrelated}, core.layers,
                     title="core-set Jaccard similarity", x_label="layer", y_label="Jaccard")
    return summary_html("CoreSimilarity", rows, chart or None, table=_core_table(core), note="to_html() for the full report")


# --- old names -------------------------------------------------------------------------

sparsity_report = renamed("sparsity_report", sparsity_page,
                          "SparsityResult.to_html() or SparsityAnalysis.to_html() (interp.sparsity.run)")
topk_report = renamed("topk_report", topk_page, "TopKCurve.to_html()")
core_report = renamed("core_report", core_page, "CoreSimilarity.to_html()")
