"""Self-contained HTML reports for neuron decoding, clamping and semantic classes (plotly, no CDN).

Rendering is separate from computing: every function takes a result object and returns
one HTML page whose first chart embeds plotly.js, so the file opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#f3f3f3}code{background:#f6f6f6;padding:0 3px}.pos{color:#0a6}.neg{color:#c33}
"""

_FILTER_JS = """
<script>
function filterRows(){
  const q=document.getElementById('q').value.toLowerCase().trim();
  const terms=q.split(/[ ,]+/).filter(t=>t.length);
  let shown=0;
  for(const row of document.querySelectorAll('#neurons tbody tr')){
    const text=row.dataset.tokens;
    const ok=!terms.length||terms.some(t=>text.split('|').includes(t));
    row.style.display=ok?'':'none'; if(ok) shown++;
  }
  document.getElementById('count').textContent=shown+' rows';
}
</script>
"""


def _page(title: str, body: Sequence[str]) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}</body></html>"
    )


def _figures(figures) -> list[str]:
    """Plotly figures as HTML divs; the first carries plotly.js inline."""
    return [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]


def _clean(token: str) -> str:
    return token.replace("Ġ", " ").replace("▁", " ")


def neuron_table_html(table, max_rows: int = 5000) -> str:
    """A searchable HTML table of decoded neurons (type words in the box to filter)."""
    from interp.neurons.decoding import _normalise

    rows = []
    for i in range(min(len(table), max_rows)):
        top, bottom = table.top_tokens(i), table.bottom_tokens(i)
        keys = "|".join(html.escape(_normalise(t)) for t in top)
        cells = [
            str(int(table.layer[i])),
            str(int(table.neuron[i])),
            " ".join(f"<code class='pos'>{html.escape(_clean(t))}</code>" for t in top),
            f"{float(table.top_values[i, 0]):.3f}",
            " ".join(f"<code class='neg'>{html.escape(_clean(t))}</code>" for t in bottom),
        ]
        rows.append(f"<tr data-tokens='{keys}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = f"<p>showing the first {max_rows} of {len(table)} neurons</p>" if len(table) > max_rows else ""
    return (
        f"{_FILTER_JS}<p>Search top tokens: <input id='q' oninput='filterRows()' placeholder='e.g. red fox 17'> "
        f"<span id='count'></span></p>{note}<table id='neurons'><thead><tr><th>layer</th><th>neuron</th>"
        f"<th>top tokens (promoted)</th><th>top score</th><th>bottom tokens (suppressed)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def decode_report(table, max_rows: int = 5000, classes=None) -> str:
    """Histogram of each neuron's top score by layer, optional class counts, and the table."""
    import plotly.graph_objects as go

    hist = go.Figure()
    for layer in sorted(set(table.layer.tolist())):
        hist.add_trace(go.Histogram(x=table.top_values[table.layer == layer, 0].tolist(), name=f"layer {layer}", opacity=0.6))
    hist.update_layout(title="top-1 score per neuron (logit per unit activation)", barmode="overlay", height=350)
    figures = [hist]
    if classes is not None:
        figures.append(_class_figure(classes))
    body = [f"<p>{len(table)} neurons, side <b>{table.side}</b>, k = {table.k}, model {html.escape(table.model_name)}. "
            "Scores are direct logit contributions per unit activation through the final norm's weight and W_U "
            "(the norm's scale and all biases left out; see docs/neurons.md).</p>"]
    body += _figures(figures)
    body.append(neuron_table_html(table, max_rows))
    return _page("Neuron decoding", body)


def _class_figure(report):
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=list(report.counts), y=list(report.counts.values())))
    fig.update_layout(title=f"neurons whose top {report.top} tokens are all in one class", height=350)
    return fig


def class_report_html(report) -> str:
    rows = []
    for cls, neurons in report.neurons.items():
        for n in neurons[:10]:
            tokens = " ".join(f"<code>{html.escape(_clean(t))}</code>" for t in n.tokens)
            rows.append(f"<tr><td>{cls}</td><td>L{n.layer}N{n.neuron}</td><td>{tokens}</td><td>{n.strength:.3f}</td></tr>")
    table = "<table><tr><th>class</th><th>neuron</th><th>top tokens</th><th>strength</th></tr>" + "".join(rows) + "</table>"
    return _page("Semantic-class neurons", _figures([_class_figure(report)]) + [table])


def clamp_report(results) -> str:
    """Per clamped neuron: the effect on its targets against the random-neuron distribution."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for r in results:
        label = f"L{r.layer}N{r.neuron}"
        fig.add_trace(go.Box(y=r.random_delta, name=label, boxpoints="all", marker_color="#999", showlegend=False))
        fig.add_trace(go.Scatter(x=[label], y=[r.mean_delta], mode="markers", marker=dict(size=14, color="#c33"),
                                 name=f"{label} (clamped neuron)"))
    fig.update_layout(title="change in mean log-prob of the decoded tokens: neuron (red) vs random neurons (grey)",
                      yaxis_title="delta log-prob", height=450)
    items = "".join(f"<li>{html.escape(r.summary())}</li>" for r in results)
    return _page("Neuron clamp test", _figures([fig]) + [f"<ul>{items}</ul>"])
