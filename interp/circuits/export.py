"""Graph exports: Neuronpedia / circuit-tracer JSON and GraphML.

Every function here reads a finished :class:`~interp.circuits.graph.Graph`; the HTML page
is rendered by :mod:`interp.circuits.html`, and :meth:`Graph.write` writes all of them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from interp.circuits.graph import Graph
from interp.io import atomic_write_text

FEATURE_TYPES = {
    "feature": "transcoder",
    "error": "mlp reconstruction error",
    "embedding": "embedding",
    "logit": "logit",
}
HEAD_TYPE = "attention head"


def head_id(layer: int, head: int, query: int) -> str:
    return f"H{layer}.{head}_{query}"


def head_nodes_and_links(graph: Graph) -> tuple[dict[str, dict], list[dict]]:
    """Head nodes (layer, head, query position) and their in/out links: each head path
    s -(w)-> t becomes s -> head and head -> t, summed over paths that share them."""
    heads: dict[str, dict] = {}
    links: dict[tuple[str, str], float] = {}
    for p in graph.head_paths:
        hid = head_id(p.layer, p.head, p.query)
        heads.setdefault(hid, {"layer": p.layer, "head": p.head, "query": p.query, "weight": 0.0})
        heads[hid]["weight"] += abs(p.weight)
        for key in ((graph.node_id(p.source), hid), (hid, graph.node_id(p.target))):
            links[key] = links.get(key, 0.0) + p.weight
    return heads, [{"source": s, "target": t, "weight": w} for (s, t), w in links.items()]


def to_json(graph: Graph, slug: str | None = None, scan: str | None = None, include_heads: bool = True) -> dict:
    """The graph in the Neuronpedia graph schema (``metadata``, ``qParams``, ``nodes``, ``links``).

    Head nodes (``feature_type`` "attention head", id ``H{layer}.{head}_{query}``) are added
    when ``include_heads``; viewers that do not know them show them as plain nodes.
    """
    nodes = []
    for i, n in enumerate(graph.nodes):
        nid = graph.node_id(i)
        layer = "E" if n.kind == "embedding" else str(n.layer if n.kind != "logit" else graph.n_layers + 1)
        if n.kind == "feature":
            js = f"{n.layer}_{n.index}-{n.pos}"
        elif n.kind == "error":
            js = f"{n.layer}_-1-{n.pos}"
        elif n.kind == "embedding":
            js = f"E_{n.index}-{n.pos}"
        else:
            js = f"L_{nid.split('_')[1]}-{n.pos}"
        info = graph.feature_info.get(nid, {})
        clerp = n.label
        if n.kind == "feature" and info.get("top_tokens"):
            clerp = f"{n.label}: " + " ".join(t for t, _ in info["top_tokens"][:3])
        node = {
            "node_id": nid,
            "feature": n.index if n.kind in ("feature", "logit") else (-1 if n.kind == "error" else n.pos),
            "layer": layer,
            "ctx_idx": n.pos,
            "feature_type": FEATURE_TYPES[n.kind],
            "jsNodeId": js,
            "clerp": clerp,
            "influence": n.influence,
            "activation": n.activation,
            "token_prob": float(n.prob) if n.prob is not None else 0.0,
            "is_target_logit": n.kind == "logit",
        }
        nodes.append(node)
    links = [
        {"source": graph.node_id(s), "target": graph.node_id(t), "weight": float(graph.adjacency[t, s])}
        for t, s in graph.edges()
    ]
    if include_heads:
        heads, head_links = head_nodes_and_links(graph)
        for hid, h in heads.items():
            nodes.append(
                {
                    "node_id": hid,
                    "feature": h["head"],
                    "layer": str(h["layer"]),
                    "ctx_idx": h["query"],
                    "feature_type": HEAD_TYPE,
                    "jsNodeId": f"H{h['layer']}.{h['head']}-{h['query']}",
                    "clerp": f"attention head L{h['layer']}H{h['head']} at position {h['query']}",
                    "influence": None,
                    "activation": None,
                    "token_prob": 0.0,
                    "is_target_logit": False,
                }
            )
        links += head_links
    slug = slug or "interp-graph"
    return {
        "metadata": {
            "slug": slug,
            "scan": scan or graph.model_name or "interp",
            "prompt_tokens": list(graph.token_strs),
            "prompt": graph.prompt,
            "node_threshold": graph.node_threshold if graph.node_threshold is not None else 0.8,
            "info": {
                "description": "attribution graph through transcoders, computed by interp",
                "generator": {"name": "interp", "version": _version()},
                "create_time_ms": time.time() * 1000,
            },
            "pruning_settings": {
                k: v
                for k, v in (("node_threshold", graph.node_threshold), ("edge_threshold", graph.edge_threshold))
                if v is not None
            },
            "scores": dict(graph.scores),
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": nodes,
        "links": links,
    }


def _version() -> str:
    from interp import __version__

    return __version__


def to_networkx(graph: Graph, include_heads: bool = True):
    """A ``networkx.DiGraph`` with the JSON export's node attributes and edge weights."""
    import networkx as nx

    data = to_json(graph, include_heads=include_heads)
    g = nx.DiGraph(prompt=graph.prompt)
    for node in data["nodes"]:
        attrs = {k: v for k, v in node.items() if k != "node_id" and v is not None}
        g.add_node(node["node_id"], **attrs)
    for link in data["links"]:
        g.add_edge(link["source"], link["target"], weight=link["weight"])
    return g


def write_graphml(graph: Graph, path: str | Path, include_heads: bool = True) -> Path:
    """Write :func:`to_networkx`'s graph as GraphML to ``path`` (atomically)."""
    import networkx as nx

    text = "\n".join(nx.generate_graphml(to_networkx(graph, include_heads)))
    atomic_write_text(path, text + "\n")
    return Path(path)


def write_json(graph: Graph, path: str | Path, slug: str | None = None) -> Path:
    """Write :func:`to_json` to ``path`` (atomically)."""
    atomic_write_text(path, json.dumps(to_json(graph, slug=slug), indent=1) + "\n")
    return Path(path)


def write_all(graph: Graph, out: str | Path, stem: str = "graph") -> dict[str, Path]:
    """``graph.write(out, stem)``: ``graph.json``, ``graph.graphml``, ``graph.html`` and ``graph.pt``."""
    return graph.write(out, stem)
