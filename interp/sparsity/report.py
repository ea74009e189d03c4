"""Self-contained HTML report for MLP activation sparsity (plotly, no CDN).

Rendering is separate from computing: :func:`sparsity_report` takes the results of
:func:`interp.sparsity.measure`, :func:`interp.sparsity.topk_curve` and
:func:`interp.sparsity.core_similarity` and returns one HTML page that opens offline.
"""

from __future__ import annotations

import html

from interp.neurons.report import _figures, _page, neuron_table_html


def sparsity_report(result, curve=None, core=None, table=None) -> str:
    """Density by layer, frequency histograms, per-token counts, the top-k curve, core similarity."""
    import plotly.graph_objects as go

    layers = [s.layer for s in result.layers]
    density = go.Figure()
    for key, label in (("nonzero", "exact nonzero"), ("positive", "positive pre-activation"),
                       ("above", f"activation > {result.threshold}"), ("deft", f"DEFT (eps {result.deft_eps})")):
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
    if curve is not None:
        topk = go.Figure(go.Scatter(x=curve.ks, y=curve.increase, mode="lines+markers"))
        topk.update_layout(title="loss increase when each token keeps only its k largest activations",
                           xaxis_title="k", xaxis_type="log", yaxis_title="loss - baseline", height=380)
        figures.append(topk)
    if core is not None:
        sim = go.Figure([go.Bar(x=core.layers, y=core.related, name="related sentences"),
                         go.Bar(x=core.layers, y=core.unrelated, name="unrelated sentences")])
        sim.update_layout(title=f"Jaccard similarity of CoreInfer core sets (alpha {core.alpha}, beta {core.beta})",
                          xaxis_title="layer", height=380)
        figures.append(sim)
    body = [f"<pre>{html.escape(result.table())}</pre>"]
    if curve is not None:
        body.append(f"<pre>{html.escape(curve.table())}</pre>")
    if core is not None:
        body.append(f"<pre>{html.escape(core.table())}</pre>")
    body += _figures(figures)
    if table is not None:
        body.append("<h2>Decoded neurons</h2>" + neuron_table_html(table))
    return _page(f"MLP activation sparsity: {result.model_name}", body)

