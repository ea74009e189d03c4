"""The HTML page of a :class:`~interp.codebooks.summary.CodebookSummary`: rendering only.

Per bottleneck, a chart of code frequencies (sorted, log scale; plotly, the library inlined
once so the page opens offline) and a table of its most frequent codes with their top
contexts and the tokens they promote. The page is built with :mod:`interp.reports`.
"""

from __future__ import annotations

import html
import json

from interp.reports import Raw, figure_html, page, section, table


def _frequency_figure(site):
    import plotly.graph_objects as go

    freq = sorted(site.frequencies, reverse=True)
    fig = go.Figure(go.Bar(y=freq, x=list(range(len(freq)))))
    fig.update_layout(
        title=f"{site.hook}: code frequency, sorted ({site.active_codes}/{site.n_codes} active)",
        xaxis_title="code rank", yaxis_title="fraction of positions", yaxis_type="log", height=320,
    )
    return fig


def _codes_table(site) -> str:
    rows = []
    for c in site.codes:
        contexts = "<br>".join(
            f"{html.escape(x['context'])}<b>[{html.escape(x['token'])}]</b> ({x['score']:.2f})" for x in c.top_contexts
        )
        tokens = ", ".join(f"{t} ({v:.2f})" for t, v in c.top_tokens)
        rows.append([c.code, c.frequency, Raw(contexts), tokens])
    return table(["code", "frequency", "top contexts [token] (cosine)", "top tokens (logit)"], rows)


def render_summary(summary) -> str:
    """One self-contained page: a frequency chart and a table of codes per bottleneck, then ``extra``."""
    sections = [
        section(site.hook, figure_html(_frequency_figure(site), include_plotlyjs=i == 0), _codes_table(site))
        for i, site in enumerate(summary.sites)
    ]
    if summary.extra:
        sections.append(section("Extra", "<pre>" + html.escape(json.dumps(summary.extra, indent=2)) + "</pre>"))
    return page(summary.title, sections, subtitle=f"{summary.n_positions} positions.")


__all__ = ["render_summary"]
