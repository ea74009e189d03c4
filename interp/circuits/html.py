"""Renderers of an attribution graph: the self-contained HTML page and the notebook block.

Rendering is separate from computing: every function here reads a finished
:class:`~interp.circuits.graph.Graph`. The page is one file with plotly.js inlined (no CDN,
no server); its template ships as package data (``interp/circuits/templates/graph.html``).
"""

from __future__ import annotations

import html
import string
from importlib import resources

from interp.circuits.export import head_id, head_nodes_and_links
from interp.circuits.graph import Graph
from interp.reports import BASE_CSS, Raw, figure_html, summary_html, table


def _hover(graph: Graph, i: int) -> str:
    n = graph.nodes[i]
    nid = graph.node_id(i)
    lines = [f"<b>{html.escape(n.label)}</b> ({n.kind}, {nid})", f"position {n.pos}: {html.escape(repr(graph.token_strs[n.pos]))}"]
    if n.activation is not None:
        name = {"feature": "activation", "error": "error norm", "logit": "target value"}.get(n.kind)
        if name:
            lines.append(f"{name}: {n.activation:.3f}")
    if n.prob is not None:
        lines.append(f"probability: {n.prob:.3f}")
    if n.influence is not None:
        lines.append(f"influence: {n.influence:.3f}")
    info = graph.feature_info.get(nid, {})
    if info.get("top_tokens"):
        lines.append("top tokens: " + ", ".join(html.escape(repr(t)) for t, _ in info["top_tokens"]))
    for c in info.get("contexts", [])[:3]:
        lines.append(f"{c['value']:.2f}: {html.escape(c['before'])}<b>{html.escape(c['token'])}</b>{html.escape(c['after'])}")
    return "<br>".join(lines)


def figure(graph: Graph):
    """The interactive plotly figure: positions across, layers up, edges by sign."""
    import plotly.graph_objects as go

    def y_of(n):
        return {"embedding": -1.0, "logit": graph.n_layers + 0.0}.get(n.kind, n.layer + (0.3 if n.kind == "error" else 0.0))

    # spread nodes that share a (position, layer) cell evenly across at most 0.8 of a column,
    # so a crowded cell does not spill into its neighbours
    sizes: dict[tuple[int, float], int] = {}
    for n in graph.nodes:
        sizes[(n.pos, y_of(n))] = sizes.get((n.pos, y_of(n)), 0) + 1
    seen: dict[tuple[int, float], int] = {}
    xy = []
    for n in graph.nodes:
        key = (n.pos, y_of(n))
        k, size = seen.get(key, 0), sizes[key]
        seen[key] = k + 1
        step = min(0.12, 0.8 / size)
        xy.append((n.pos + step * (k - (size - 1) / 2), y_of(n)))
    heads, _ = head_nodes_and_links(graph)
    # heads moving to the same query position in the same layer are stacked, not overlaid
    stacked: dict[tuple[int, int], int] = {}
    head_xy = {}
    for hid, h in heads.items():
        rank = stacked.get((h["layer"], h["query"]), 0)
        stacked[(h["layer"], h["query"])] = rank + 1
        head_xy[hid] = (h["query"] - 0.25, h["layer"] - 0.5 + 0.12 * rank)
    edges = graph.edges()
    fig = go.Figure()
    for sign, colour in ((1, "rgba(31,119,180,{a})"), (-1, "rgba(214,39,40,{a})")):
        xs, ys = [], []
        for t, s in edges:
            w = float(graph.adjacency[t, s])
            if (w > 0) == (sign > 0):
                xs += [xy[s][0], xy[t][0], None]
                ys += [xy[s][1], xy[t][1], None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", line={"width": 1.5, "color": colour.format(a=0.45)},
                                     name="positive edges" if sign > 0 else "negative edges"))
    if graph.head_paths:
        xs, ys = [], []
        for p in graph.head_paths:
            hx, hy = head_xy[head_id(p.layer, p.head, p.query)]
            xs += [xy[p.source][0], hx, xy[p.target][0], None]
            ys += [xy[p.source][1], hy, xy[p.target][1], None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", name="through heads",
                                 line={"width": 1, "dash": "dot", "color": "rgba(44,160,44,0.7)"}))
        fig.add_trace(go.Scatter(
            x=[head_xy[h][0] for h in heads], y=[head_xy[h][1] for h in heads], mode="markers+text",
            text=[f"L{h['layer']}H{h['head']}" for h in heads.values()], textposition="middle left",
            marker={"symbol": "diamond", "size": 11, "color": "rgb(44,160,44)"}, name="attention heads",
            hovertext=[f"<b>head L{h['layer']}H{h['head']}</b><br>moves to position {h['query']}<br>carried |weight| {h['weight']:.3f}"
                       for h in heads.values()], hoverinfo="text"))
    styles = {"feature": ("circle", "rgb(255,127,14)"), "error": ("square", "rgb(150,150,150)"),
              "embedding": ("triangle-up", "rgb(31,119,180)"), "logit": ("star", "rgb(148,103,189)")}
    for kind, (symbol, colour) in styles.items():
        idx = [i for i, n in enumerate(graph.nodes) if n.kind == kind]
        if not idx:
            continue
        fig.add_trace(go.Scatter(
            x=[xy[i][0] for i in idx], y=[xy[i][1] for i in idx], mode="markers+text",
            text=[graph.nodes[i].label if kind in ("embedding", "logit") else "" for i in idx], textposition="top center",
            marker={"symbol": symbol, "size": 13, "color": colour, "line": {"width": 1, "color": "#333"}},
            hovertext=[_hover(graph, i) for i in idx], hoverinfo="text", name=kind + "s"))
    fig.update_layout(
        height=220 + 110 * (graph.n_layers + 2), width=max(800, 70 * len(graph.tokens)),
        margin={"l": 60, "r": 20, "t": 60, "b": 40}, template="plotly_white",
        xaxis={"title": "position", "tickmode": "array", "tickvals": list(range(len(graph.tokens))),
               "ticktext": [f"{i}:{t}" for i, t in enumerate(graph.token_strs)]},
        yaxis={"title": "layer", "tickmode": "array", "tickvals": list(range(-1, graph.n_layers + 1)),
               "ticktext": ["emb", *[str(i) for i in range(graph.n_layers)], "logit"]},
        hoverlabel={"align": "left"},
    )
    return fig


def _node_table(graph: Graph) -> str:
    header = ["node", "kind", "position", "activation", "influence", "top tokens", "heads carrying its edges"]
    rows = []
    for i in sorted(range(len(graph.nodes)), key=lambda i: -(graph.nodes[i].influence or 0.0)):
        n = graph.nodes[i]
        nid = graph.node_id(i)
        tops = ", ".join(repr(t) for t, _ in graph.feature_info.get(nid, {}).get("top_tokens", []))
        heads = sorted({f"L{p.layer}H{p.head}" for p in graph.head_paths if p.source == i or p.target == i})
        rows.append([Raw(f"{html.escape(n.label)} <code>{nid}</code>"), n.kind, n.pos, n.activation, n.influence,
                     tops, ", ".join(heads)])
    return table(header, rows, ".3f")


def meta_line(graph: Graph) -> str:
    """Model, graph size, scores, thresholds and attribution time in one line (plain text)."""
    scores = ", ".join(f"{k} {v:.3f}" for k, v in graph.scores.items())
    return (
        f"{graph.model_name or 'model'}; {graph.counts()['feature']} features, "
        f"{len(graph.edges())} edges, {len(graph.head_paths)} head paths; {scores}; "
        f"node threshold {graph.node_threshold}, edge threshold {graph.edge_threshold}; traced in {graph.seconds:.2f} s"
    )


def to_html(graph: Graph) -> str:
    """The graph as one self-contained HTML page: the interactive graph (plotly.js inlined),
    the prompt and the node table."""
    template = resources.files("interp.circuits").joinpath("templates/graph.html").read_text(encoding="utf-8")
    return string.Template(template).substitute(
        title=html.escape(f"Attribution graph: {graph.prompt}"), base_css=BASE_CSS, meta=html.escape(meta_line(graph)),
        prompt=_prompt(graph), plot=figure_html(figure(graph)), table=_node_table(graph),
    )


def _prompt(graph: Graph) -> str:
    """The prompt's tokens, each boxed so token boundaries show (the reference vocabulary
    has no leading-space marks, so plain concatenation runs words together)."""
    return "".join(
        f'<span style="border:1px solid #ccc;border-radius:3px;padding:0 2px;margin-right:2px">{html.escape(t)}</span>'
        for t in graph.token_strs
    )


def notebook_summary(graph: Graph) -> str:
    """The compact notebook display: headline numbers, the prompt and the interactive graph."""
    kinds = graph.counts()
    rows = [("prompt", Raw(f'<span style="font-family:monospace">{_prompt(graph)}</span>')), ("model", graph.model_name or "(not recorded)"),
            ("nodes", f"{kinds['feature']} features, {kinds['error']} error, {kinds['embedding']} tokens, {kinds['logit']} logits"),
            ("edges", f"{len(graph.edges())} ({len(graph.head_paths)} head paths)"),
            *((f"{k} score", v) for k, v in graph.scores.items()),
            ("traced in", f"{graph.seconds:.2f} s")]
    return summary_html(graph.title, rows, figure(graph), note="to_html() for the full page, graph.write(dir) for it and the exports")
