"""The HTML report of an :class:`~interp.transcoders.evaluation.EvalResult`: rendering only.

Plots (plotly, the library inlined once so the file opens offline): L0 against FVU per
layer, fraction of CE loss recovered per layer, and the histogram of latent firing
frequencies. Then one card per sampled latent. A cross-layer transcoder adds a section
with where each layer's latents write (the share of their decoder norm per output layer, as a
table and a heatmap) and, when the evaluation has a baseline run, the two runs side by side
(total L0, CE with every layer replaced, FVU per layer). The page is built with
:mod:`interp.reports`.
"""

from __future__ import annotations

import html

from interp.reports import Raw, figures_html, page, section, table, token_text

RECOVERED_NOTE = (
    "Fraction of CE loss recovered = (CE ablated - CE spliced) / (CE ablated - CE clean); 1 means the transcoder "
    "replaces the MLP perfectly, 0 means it is no better than ablating the MLP."
)
_CSS = """
td.ctx{font-family:monospace;white-space:nowrap}span.focus{font-weight:bold;border-bottom:2px solid #c00}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:.8em 0}
"""


def summary_table(result) -> str:
    """Per layer and all layers together: L0, FVU, dead/dense fractions, CE losses, recovered."""
    header = ["layer", "L0", "FVU", "dead", "dense", "CE spliced", "CE zero-abl.", "CE mean-abl.",
              "recovered vs zero", "recovered vs mean"]
    rows = [
        [r.layer, r.l0, r.fvu, r.dead_fraction, r.dense_fraction, r.ce_spliced, r.ce_zero_ablated,
         r.ce_mean_ablated, r.recovered_vs_zero, r.recovered_vs_mean]
        for r in result.layers
    ]
    rows.append(["all", None, None, None, None, result.ce_all_spliced, result.ce_all_zero_ablated,
                 result.ce_all_mean_ablated, result.recovered_all_vs_zero, result.recovered_all_vs_mean])
    formats = ["", ".2f", ".4f", ".3f", ".3f", ".4f", ".4f", ".4f", ".3f", ".3f"]
    return table(header, rows, formats)


def _figures(result) -> list:
    import plotly.graph_objects as go

    figures = []
    fig = go.Figure()
    for r in result.layers:
        fig.add_trace(go.Scatter(x=[r.l0], y=[r.fvu], mode="markers+text", text=[f"layer {r.layer}"], textposition="top center", name=f"layer {r.layer}"))
    fig.update_layout(title="L0 vs FVU (lower-left is better)", xaxis_title="L0 (active latents per token)", yaxis_title="FVU", height=380)
    figures.append(fig)
    labels = [f"layer {r.layer}" for r in result.layers] + ["all"]
    fig = go.Figure(
        [
            go.Bar(x=labels, y=[r.recovered_vs_zero for r in result.layers] + [result.recovered_all_vs_zero], name="vs zero-ablation"),
            go.Bar(x=labels, y=[r.recovered_vs_mean for r in result.layers] + [result.recovered_all_vs_mean], name="vs mean-ablation"),
        ]
    )
    fig.update_layout(title="Fraction of CE loss recovered with the transcoder spliced in", barmode="group", height=380)
    figures.append(fig)
    fig = go.Figure()
    for key, values in result.log10_frequencies.items():
        fig.add_trace(go.Histogram(x=values, name=key, opacity=0.6, nbinsx=60))
    fig.update_layout(title="Latent firing frequency (log10; -10 = never fired)", barmode="overlay", xaxis_title="log10 frequency", height=380)
    figures.append(fig)
    return figures


def _context(ctx: dict) -> str:
    """A context's tokens concatenated as the tokenizer writes them, the firing one marked. Its
    ``tokens`` are the pieces of :func:`interp.reports.token_pieces` (vocabulary entries in files
    written earlier: their word markers read as spaces)."""
    pieces = []
    for i, tok in enumerate(ctx["tokens"]):
        text = html.escape(token_text(tok))
        pieces.append(f'<span class="focus">{text}</span>' if i == ctx["focus"] else text)
    return "".join(pieces)


def _features(result) -> str:
    cards = []
    for card in result.features:
        contexts = table(["top activating contexts", "act."], [[Raw(_context(c)), c["value"]] for c in card.contexts], ".3f", "ctx")
        promoted = ", ".join(f"{html.escape(token_text(t))} ({v:+.2f})" for t, v in card.decoder_top_tokens)
        cards.append(
            f'<div class="card"><b>layer {card.layer} &middot; latent {card.index}</b> '
            f'<span class="muted">fires on {100 * card.frequency:.3f}% of tokens</span>'
            f"{contexts}<div>decoder direction promotes: {promoted}</div></div>"
        )
    return "\n".join(cards) or "<p>No live latents.</p>"


CROSS_LAYER_NOTE = (
    "Rows: the layer a latent reads; columns: the MLP outputs it writes. Each row is the share of the squared "
    "decoder norm of that layer's live latents going to each output layer, each output layer's decoders divided by "
    "its MLP output's variance (a per-layer transcoder is the diagonal). "
    "L0 in the summary counts a latent once, at the layer it reads; FVU and spliced CE are the output layer's."
)


def comparison_table(result) -> str:
    """The run and its baseline: kind, total L0, CE with every layer replaced, recovered, FVU per layer."""
    runs = [result] + ([result.baseline] if result.baseline is not None else [])
    header = ["run", "kind", "total L0", "CE, all replaced", "CE - clean", "recovered vs zero"] + [
        f"FVU layer {r.layer}" for r in result.layers]
    rows = [[r.name or "(in memory)", r.kind, r.total_l0, r.ce_all_spliced, r.ce_all_spliced - r.ce_clean,
             r.recovered_all_vs_zero] + [x.fvu for x in r.layers] for r in runs]
    return table(header, rows, ["", "", ".2f", ".4f", ".4f", ".3f"] + [".4f"] * len(result.layers))


def _cross_layer_section(result) -> str:
    import plotly.graph_objects as go

    layers = [r.layer for r in result.layers]
    share = result.cross_layer.decoder_share
    rows = [[f"layer {src}"] + share[i] for i, src in enumerate(layers)]
    grid = table(["reads at \\ writes to"] + [f"layer {m}" for m in layers], rows, [""] + [".3f"] * len(layers))
    fig = go.Figure(go.Heatmap(z=share, x=[f"out {m}" for m in layers], y=[f"in {src}" for src in layers],
                               colorscale="Blues", zmin=0, zmax=1))
    fig.update_layout(title="Where each layer's latents write (share of decoder norm)", height=340,
                      yaxis_autorange="reversed")
    head = (f"<p>Reads <code>{html.escape(result.cross_layer.input_site)}</code> at each layer; "
            f"total L0 <b>{result.total_l0:.2f}</b> active latents per token.</p>")
    parts = [head, grid, figures_html([fig], include_plotlyjs=False)]
    return section("Cross-layer transcoder", *parts, note=CROSS_LAYER_NOTE)


def render(result) -> str:
    """The self-contained HTML report (no network needed to open it)."""
    extra = []
    if result.cross_layer is not None:
        extra.append(_cross_layer_section(result))
    if result.baseline is not None:
        note = ("Both runs evaluated on the same held-out tokens; 'all replaced' splices every layer at once "
                "(for a cross-layer transcoder, the replacement model).")
        extra.append(section("Against the baseline run", comparison_table(result), note=note))
    return page(
        f"Transcoder evaluation: {result.model}",
        [
            section("Summary", f"<p>Clean CE loss: <b>{result.ce_clean:.4f}</b> on {result.n_tokens} held-out tokens.</p>",
                    summary_table(result), f'<p class="muted">{html.escape(RECOVERED_NOTE)}</p>'),
            section("Plots", figures_html(_figures(result))),
            *extra,
            section("Latents", _features(result),
                    note="A random sample of live latents per layer: top activating contexts (activating token underlined, "
                         "activation value at right) and the tokens their decoder direction promotes most through the unembedding."),
        ],
        model=result.model,
        subtitle=f"{len(result.layers)} layer(s), {result.n_tokens} held-out tokens",
        css=_CSS,
    )
