"""Renderers of an attribution graph: the viewer page and the notebook block.

Rendering is separate from computing: every function here reads a finished
:class:`~interp.circuits.graph.Graph`. The viewer is d3 (bundled as package data,
``interp/circuits/assets/d3.min.js``; see the README there) plus the viewer's own code
(``templates/prune.js``, ``templates/viewer.js``, ``templates/viewer.css``). Both travel as
one gzip-compressed, base64-encoded script that the browser inflates with
``DecompressionStream``: once per page, and once per kernel in Jupyter. Each graph travels
as compressed JSON (:func:`viewer_data`) beside it. No CDN, no server: a page opens offline.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import secrets
import string
from functools import lru_cache
from importlib import resources

import numpy as np

from interp.circuits.graph import Graph
from interp.reports import BASE_CSS, Raw, summary_html, table

_sent = {"library": False}
"""Whether this Python process has put the library into a notebook output (see :func:`notebook_summary`)."""

MISSING_LIBRARY = (
    "The viewer's code is loaded once per kernel, by the first graph displayed, and that output is not on this "
    "page. Run interp.circuits.html.resend_library() and display the graph again."
)


def _text(name: str) -> str:
    return resources.files("interp.circuits").joinpath(name).read_text(encoding="utf-8")


def _compress(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode("utf-8"), 9, mtime=0)).decode("ascii")


def _f32(values) -> list[float]:
    """float32 values as the shortest decimals that read back as the same float32 (the page
    rounds them with ``Math.fround``, so it prunes the exact weights Python prunes)."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32).reshape(-1)]


def _round(x, digits: int = 4):
    return None if x is None else round(float(x), digits)


def _contexts(contexts) -> list:
    return [
        {**c, "value": _round(c["value"])} if isinstance(c, dict) else [c[0], _round(c[1])]  # tuples: graphs saved earlier
        for c in contexts
    ]


def viewer_data(graph: Graph) -> dict:
    """What the page holds: the prompt's tokens, the nodes (with each feature's top tokens and
    contexts), the edges as ``[target, source, weight]``, the head paths, and the graph's
    circuit-tracer JSON metadata and nodes (:func:`interp.circuits.export.to_json`) for the
    subgraph export."""
    from interp.circuits.export import to_json

    exported = to_json(graph, include_heads=False)
    ids = [node["node_id"] for node in exported["nodes"]]
    weights = _f32(graph.logit_weights.detach().cpu().numpy())
    nodes = []
    for i, n in enumerate(graph.nodes):
        info = graph.feature_info.get(graph.node_id(i), {})
        nodes.append({
            "id": ids[i], "kind": n.kind, "layer": n.layer, "pos": n.pos, "index": n.index, "label": n.label,
            "activation": _round(n.activation), "prob": _round(n.prob), "influence": _round(n.influence, 6),
            "logit_weight": weights[i],
            "top_tokens": [[t, _round(v)] for t, v in info.get("top_tokens", [])],
            "contexts": _contexts(info.get("contexts", [])),
            **({"writes_to": info["writes_to"]} if "writes_to" in info else {}),  # a CLT feature's output layers
        })
    adjacency = graph.adjacency.detach().cpu().numpy()
    targets, sources = np.nonzero(adjacency)
    values = _f32(adjacency[targets, sources])
    return {
        "prompt": graph.prompt,
        "model": graph.model_name,
        "tokens": list(graph.token_strs),
        "n_layers": graph.n_layers,
        "node_threshold": graph.node_threshold,
        "edge_threshold": graph.edge_threshold,
        "nodes": nodes,
        "edges": [[int(t), int(s), w] for t, s, w in zip(targets.tolist(), sources.tolist(), values)],
        "heads": [[p.source, p.target, p.layer, p.head, p.query, _round(p.weight, 6)] for p in graph.head_paths],
        "export": {"metadata": exported["metadata"], "nodes": exported["nodes"]},
    }


@lru_cache(maxsize=1)
def library_js() -> str:
    """d3 (kept out of the page's global ``d3``) and the viewer, as one script that defines
    ``window.interpViewer`` and adds the viewer's stylesheet."""
    return (
        "(function () {\nvar module = { exports: {} }, exports = module.exports;\n"
        + _text("assets/d3.min.js")
        + "\nvar d3 = module.exports;\n"
        + _text("templates/prune.js")
        + _text("templates/viewer.js")
        + "var style = document.createElement('style');\nstyle.textContent = "
        + json.dumps(_text("templates/viewer.css"))
        + ";\ndocument.head.appendChild(style);\nwindow.interpViewer = interpViewer;\n})();\n"
    )


@lru_cache(maxsize=1)
def _library_key() -> str:
    return hashlib.sha256(library_js().encode("utf-8")).hexdigest()[:12]


@lru_cache(maxsize=1)
def library_script() -> str:
    """The ``<script>`` that inflates :func:`library_js` (gzip + base64) and runs it, once per page
    even when it appears more than once."""
    return "<script>" + string.Template(_text("templates/load-library.js")).substitute(
        key=_library_key(), library=_compress(library_js())
    ) + "</script>"


def viewer_fragment(graph: Graph, library: bool = True) -> str:
    """The viewer of ``graph`` as an HTML fragment: a ``<div>`` the script mounts the viewer in,
    preceded by :func:`library_script` when ``library``."""
    element = "iv-" + secrets.token_hex(6)
    boot = string.Template(_text("templates/mount.js")).substitute(
        element=element, key=_library_key(), payload=_compress(json.dumps(viewer_data(graph), separators=(",", ":"))),
        missing=json.dumps(MISSING_LIBRARY),
    )
    fallback = "Loading the graph viewer (it needs JavaScript)\u2026"
    return (
        (library_script() if library else "")
        + f'<div id="{element}" class="iv-viewer"><p class="iv-fallback">{fallback}</p></div><script>{boot}</script>'
    )


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
    """The graph as one self-contained HTML page: the viewer (d3 inlined once, compressed), the
    prompt and the node table."""
    return string.Template(_text("templates/graph.html")).substitute(
        title=html.escape(f"Attribution graph: {graph.prompt}"), base_css=BASE_CSS, meta=html.escape(meta_line(graph)),
        prompt=_prompt(graph), viewer=viewer_fragment(graph), table=_node_table(graph),
    )


def _prompt(graph: Graph) -> str:
    """The prompt's tokens, each boxed so token boundaries show."""
    return "".join(
        f'<span style="border:1px solid #ccc;border-radius:3px;padding:0 2px;margin-right:2px;white-space:pre">'
        f"{html.escape(t)}</span>"
        for t in graph.token_strs
    )


def resend_library() -> None:
    """Put the viewer's code into the next graph displayed in the notebook again (after the
    output that carried it was cleared)."""
    _sent["library"] = False


def notebook_summary(graph: Graph) -> str:
    """The notebook block: headline numbers, the prompt and the viewer. The viewer's code (about
    160 kB) goes into the first graph displayed in this kernel only; later ones carry their data."""
    kinds = graph.counts()
    rows = [("prompt", Raw(f'<span style="font-family:monospace">{_prompt(graph)}</span>')),
            ("model", graph.model_name or "(not recorded)"),
            ("nodes", f"{kinds['feature']} features, {kinds['error']} error, {kinds['embedding']} tokens, {kinds['logit']} logits"),
            ("edges", f"{len(graph.edges())} ({len(graph.head_paths)} head paths)"),
            *((f"{k} score", v) for k, v in graph.scores.items()),
            ("traced in", f"{graph.seconds:.2f} s")]
    first = not _sent["library"]
    _sent["library"] = True
    head = summary_html(graph.title, rows, note="to_html() for the full page, graph.write(dir) for it and the exports")
    return f'<div class="iv-notebook">{head}{viewer_fragment(graph, library=first)}</div>'
