"""The HTML report of an :class:`~interp.transcoders.evaluation.EvalResult`: rendering only.

Plots (plotly, the library inlined once so the file opens offline): L0 against FVU per
layer, fraction of CE loss recovered per layer, and the histogram of latent firing
frequencies. Then one card per sampled latent. The page layout is the package-data
template ``report_template.html``.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template


def _table(result) -> str:
    head = "<tr><th>layer</th><th>L0</th><th>FVU</th><th>dead</th><th>dense</th><th>CE spliced</th><th>CE zero-abl.</th><th>CE mean-abl.</th><th>recovered vs zero</th><th>recovered vs mean</th></tr>"
    rows = [
        f"<tr><td>{r.layer}</td><td>{r.l0:.2f}</td><td>{r.fvu:.4f}</td><td>{r.dead_fraction:.3f}</td><td>{r.dense_fraction:.3f}</td>"
        f"<td>{r.ce_spliced:.4f}</td><td>{r.ce_zero_ablated:.4f}</td><td>{r.ce_mean_ablated:.4f}</td><td>{r.recovered_vs_zero:.3f}</td><td>{r.recovered_vs_mean:.3f}</td></tr>"
        for r in result.layers
    ]
    rows.append(
        f"<tr><td>all</td><td></td><td></td><td></td><td></td><td>{result.ce_all_spliced:.4f}</td><td>{result.ce_all_zero_ablated:.4f}</td>"
        f"<td>{result.ce_all_mean_ablated:.4f}</td><td>{result.recovered_all_vs_zero:.3f}</td><td>{result.recovered_all_vs_mean:.3f}</td></tr>"
    )
    return f"<p>Clean CE loss: <b>{result.ce_clean:.4f}</b> on {result.n_tokens} held-out tokens.</p><table>{head}{''.join(rows)}</table>"


def _figures(result) -> str:
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
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    return "\n".join(parts)


def _readable(token) -> str:
    """Byte-level BPE (GPT-2's ``Ġ``) and SentencePiece (``▁``) space markers as spaces."""
    return str(token).replace("\u0120", " ").replace("\u2581", " ")


def _context(ctx: dict) -> str:
    pieces = []
    for i, tok in enumerate(ctx["tokens"]):
        text = html.escape(_readable(tok))
        pieces.append(f'<span class="focus">{text}</span>' if i == ctx["focus"] else text)
    return " ".join(pieces)


def _features(result) -> str:
    cards = []
    for card in result.features:
        rows = "".join(f'<tr><td class="ctx">{_context(c)}</td><td>{c["value"]:.3f}</td></tr>' for c in card.contexts)
        promoted = ", ".join(f"{html.escape(_readable(t))} ({v:+.2f})" for t, v in card.decoder_top_tokens)
        cards.append(
            f'<div class="card"><b>layer {card.layer} &middot; latent {card.index}</b> '
            f'<span class="muted">fires on {100 * card.frequency:.3f}% of tokens</span>'
            f"<table><tr><th>top activating contexts</th><th>act.</th></tr>{rows}</table>"
            f"<div>decoder direction promotes: {promoted}</div></div>"
        )
    return "\n".join(cards) or "<p>No live latents.</p>"


def render(result) -> str:
    """The self-contained HTML report (no network needed to open it)."""
    template = Template(resources.files("interp.transcoders").joinpath("report_template.html").read_text(encoding="utf-8"))
    return template.substitute(
        title=f"Transcoder evaluation: {html.escape(result.model)}",
        subtitle=f"{len(result.layers)} layer(s), {result.n_tokens} held-out tokens",
        summary=_table(result),
        figures=_figures(result),
        features=_features(result),
    )
