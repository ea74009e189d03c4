"""The HTML report of an :class:`~interp.transcoders.evaluation.EvalResult`: rendering only.

Plots (plotly, the library inlined once so the file opens offline): L0 against FVU per
layer, fraction of CE loss recovered per layer, and the histogram of latent firing
frequencies. Then one card per sampled latent. The page is built with
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
    pieces = []
    for i, tok in enumerate(ctx["tokens"]):
        text = html.escape(token_text(tok))
        pieces.append(f'<span class="focus">{text}</span>' if i == ctx["focus"] else text)
    return " ".join(pieces)


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


def render(result) -> str:
    """The self-contained HTML report (no network needed to open it)."""
    return page(
        f"Transcoder evaluation: {result.model}",
        [
            section("Summary", f"<p>Clean CE loss: <b>{result.ce_clean:.4f}</b> on {result.n_tokens} held-out tokens.</p>",
                    summary_table(result), f'<p class="muted">{html.escape(RECOVERED_NOTE)}</p>'),
            section("Plots", figures_html(_figures(result))),
            section("Latents", _features(result),
                    note="A random sample of live latents per layer: top activating contexts (activating token underlined, "
                         "activation value at right) and the tokens their decoder direction promotes most through the unembedding."),
        ],
        model=result.model,
        subtitle=f"{len(result.layers)} layer(s), {result.n_tokens} held-out tokens",
        css=_CSS,
    )
