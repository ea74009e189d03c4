"""Graph exports: circuit-tracer / Neuronpedia graph JSON, circuit-tracer's served folder, GraphML.

Every function here reads a finished :class:`~interp.circuits.graph.Graph`; the HTML page
is rendered by :mod:`interp.circuits.html`, graph files other tools wrote are read by
:mod:`interp.circuits.formats`, and :meth:`Graph.write` writes everything through
:func:`write_all`.

The JSON is what circuit-tracer 0.5.0 writes (``create_graph_files``) and its pydantic graph
model (``circuit_tracer.frontend.graph_models.Model``) accepts, node for node:

* features ``{layer}_{feature}_{pos}``, ``feature_type`` "cross layer transcoder" (circuit-tracer
  names every transcoder feature so, per-layer ones included), ``feature`` the Cantor pairing
  of layer and feature;
* error nodes ``0_{layer}_{pos}`` ("mlp reconstruction error"); where that id is a layer-0
  feature's too, the error node is written ``{layer}_-1_{pos}`` (circuit-tracer's later form)
  so that no two nodes share an id;
* embeddings ``E_{token}_{pos}``, labelled ``Emb: "tok"``;
* logits ``{n_layers+1}_{token}_{pos}``, labelled ``Output "tok" (p=0.620)``; a target that is
  not one token (a logit difference) gets circuit-tracer's virtual index ``d_vocab + rank``;
* each node's ``influence`` is its cumulative influence (the viewers prune by it).

Attention-head paths are not nodes there: they go in the top-level ``interp`` field
(``interp.head_paths``), which circuit-tracer and Neuronpedia ignore, so the core graph
validates. GraphML keeps them as nodes ("attention head").
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from interp.circuits.graph import Graph, cumulative_influence, influence
from interp.errors import ConfigError, StoreError
from interp.io import atomic_write_text

FEATURE_TYPES = {
    "feature": "cross layer transcoder",
    "error": "mlp reconstruction error",
    "embedding": "embedding",
    "logit": "logit",
}
"""``feature_type`` of each node kind, as circuit-tracer 0.5.0 writes it."""
HEAD_TYPE = "attention head"
"""``feature_type`` of the head nodes in GraphML (never in the JSON's ``nodes``)."""
SERVER_FOLDER = "graph_files"
"""Folder of :meth:`Graph.write` that circuit-tracer's local server reads (``serve(data_dir=...)``)."""
METADATA_FILE = "graph-metadata.json"
"""The index of the graphs in a served folder: ``{"graphs": [metadata, ...]}``."""
CORE_METADATA = ("slug", "scan", "transcoder_list", "prompt_tokens", "prompt", "node_threshold", "schema_version")
"""circuit-tracer's ``Metadata`` fields: what ``graph-metadata.json`` lists for each graph."""


def head_id(layer: int, head: int, query: int) -> str:
    return f"H{layer}.{head}_{query}"


def head_nodes_and_links(graph: Graph, ids: Sequence[str] | None = None) -> tuple[dict[str, dict], list[dict]]:
    """Head nodes (layer, head, query position) and their in/out links: each head path
    s -(w)-> t becomes s -> head and head -> t, summed over paths that share them. Nodes are
    named by ``ids`` (default: :meth:`Graph.node_id`)."""
    name = ids.__getitem__ if ids is not None else graph.node_id
    heads: dict[str, dict] = {}
    links: dict[tuple[str, str], float] = {}
    for p in graph.head_paths:
        hid = head_id(p.layer, p.head, p.query)
        heads.setdefault(hid, {"layer": p.layer, "head": p.head, "query": p.query, "weight": 0.0})
        heads[hid]["weight"] += abs(p.weight)
        for key in ((name(p.source), hid), (hid, name(p.target))):
            links[key] = links.get(key, 0.0) + p.weight
    return heads, [{"source": s, "target": t, "weight": w} for (s, t), w in links.items()]


def cantor_pairing(x: int, y: int) -> int:
    """circuit-tracer's ``feature`` of a transcoder feature node: a unique integer per (layer, feature)."""
    return (x + y) * (x + y + 1) // 2 + y


def d_vocab(graph: Graph) -> int | None:
    """The vocabulary size of the graph's model (from its logit directions), None when unknown."""
    return int(graph.logit_directions.shape[-1]) if graph.logit_directions.numel() else None


def logit_indices(graph: Graph) -> list[int]:
    """circuit-tracer's vocabulary index of each logit node: its token, or for a target that is
    no single token ``d_vocab + rank`` (circuit-tracer's virtual index of custom targets; past
    the largest token id in the graph when ``d_vocab`` is unknown)."""
    base = d_vocab(graph)
    if base is None:
        base = 1 + max([*graph.tokens, *(n.index for n in graph.nodes if n.kind == "logit" and n.index is not None)], default=-1)
    logits = [n for n in graph.nodes if n.kind == "logit"]
    return [n.index if n.index is not None else base + rank for rank, n in enumerate(logits)]


def node_ids(graph: Graph) -> list[str]:
    """The id of every node in circuit-tracer 0.5.0's convention (see the module docstring)."""
    ids = [graph.node_id(i) if n.kind == "feature" else "" for i, n in enumerate(graph.nodes)]
    features = set(ids)
    logit = iter(logit_indices(graph))
    for i, n in enumerate(graph.nodes):
        if n.kind == "error":
            ids[i] = f"0_{n.layer}_{n.pos}" if f"0_{n.layer}_{n.pos}" not in features else f"{n.layer}_-1_{n.pos}"
        elif n.kind == "embedding":
            ids[i] = f"E_{n.index}_{n.pos}"
        elif n.kind == "logit":
            ids[i] = f"{graph.n_layers + 1}_{next(logit)}_{n.pos}"
    return ids


def process_token(token: str) -> str:
    """A token as circuit-tracer's viewer shows it (newline, tab, return as visible marks)."""
    return token.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def _cumulative(graph: Graph) -> list[float | None]:
    """Each node's cumulative influence: as :func:`prune` recorded it, else over this graph."""
    if all(n.cumulative_influence is not None for n in graph.nodes):
        return [n.cumulative_influence for n in graph.nodes]
    return cumulative_influence(influence(graph.adjacency, graph.logit_weights)).tolist()


def _node(graph: Graph, i: int, nid: str, vocab: int | None, cumulative: float | None, first_logit: bool) -> dict:
    n = graph.nodes[i]
    tok = graph.token_strs[n.pos] if n.pos < len(graph.token_strs) else ""
    node = {"node_id": nid, "layer": str(n.layer), "ctx_idx": n.pos, "feature_type": FEATURE_TYPES[n.kind],
            "token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0}
    if n.kind == "feature":
        info = graph.feature_info.get(graph.node_id(i), {})
        tops = " ".join(t for t, _ in info.get("top_tokens", [])[:3])
        node.update(feature=cantor_pairing(n.layer, n.index), jsNodeId=f"{n.layer}_{n.index}-0",
                    clerp=f"{n.label}: {tops}" if tops else n.label)
    elif n.kind == "error":
        node.update(feature=-1, jsNodeId=f"{n.layer}_{n.pos}-0", clerp=f'Err: mlp "{process_token(tok)}"')
    elif n.kind == "embedding":
        node.update(feature=n.pos, layer="E", jsNodeId=f"E_{n.index}-{n.pos}", clerp=f'Emb: "{process_token(tok)}"')
    else:
        prob = float(n.prob) if n.prob is not None else float(graph.logit_weights[i])
        node.update(feature=vocab, layer=str(graph.n_layers + 1), token_prob=prob, is_target_logit=first_logit,
                    jsNodeId=f"L_{vocab}-{n.pos}", clerp=f'Output "{n.label}" (p={prob:.3f})')
        cumulative = None  # circuit-tracer gives logit nodes no influence
    node["influence"] = cumulative
    node["activation"] = n.activation
    order = ("node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
             "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation")
    return {k: node[k] for k in order}


def to_json(graph: Graph, slug: str | None = None, scan: str | None = None, include_heads: bool = True) -> dict:
    """The graph as circuit-tracer 0.5.0 / Neuronpedia graph JSON: ``metadata``, ``qParams``,
    ``nodes``, ``links``, plus ``interp`` (``d_vocab``; ``head_paths`` when ``include_heads``).

    ``slug`` names the graph (default "interp-graph"); ``scan`` is what Neuronpedia reads as the
    model id (default: the graph's model name).
    """
    ids = node_ids(graph)
    cumulative = _cumulative(graph)
    vocab = {i: v for i, v in zip(graph.index_of("logit"), logit_indices(graph))}
    first = graph.index_of("logit")[:1]
    nodes = [_node(graph, i, ids[i], vocab.get(i), cumulative[i], i in first) for i in range(len(graph.nodes))]
    links = [{"source": ids[s], "target": ids[t], "weight": float(graph.adjacency[t, s])} for t, s in graph.edges()]
    extras: dict = {"d_vocab": d_vocab(graph)}
    if graph.transcoders_forced is not None:
        extras["transcoders_forced"] = graph.transcoders_forced
    if include_heads:
        extras["head_paths"] = [
            {"source": ids[p.source], "target": ids[p.target], "layer": p.layer, "head": p.head, "query": p.query,
             "weight": p.weight}
            for p in graph.head_paths
        ]
    return {
        "metadata": {
            "slug": slug or "interp-graph",
            "scan": scan or graph.model_name or "interp",
            "transcoder_list": [],
            "prompt_tokens": list(graph.token_strs),
            "prompt": graph.prompt,
            "node_threshold": graph.node_threshold if graph.node_threshold is not None else 0.8,
            "schema_version": 1,
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
        "interp": extras,
    }


def _version() -> str:
    from interp import __version__

    return __version__


def to_networkx(graph: Graph, include_heads: bool = True):
    """A ``networkx.DiGraph`` with the JSON export's node attributes and edge weights, and the
    attention heads as nodes (``feature_type`` "attention head", id ``H{layer}.{head}_{query}``)
    linked from the sources they carry and to their targets."""
    import networkx as nx

    data = to_json(graph, include_heads=False)
    g = nx.DiGraph(prompt=graph.prompt)
    for node in data["nodes"]:
        attrs = {k: v for k, v in node.items() if k != "node_id" and v is not None}
        g.add_node(node["node_id"], **attrs)
    links = list(data["links"])
    if include_heads:
        heads, head_links = head_nodes_and_links(graph, node_ids(graph))
        for hid, h in heads.items():
            g.add_node(hid, feature=h["head"], layer=str(h["layer"]), ctx_idx=h["query"], feature_type=HEAD_TYPE,
                       clerp=f"attention head L{h['layer']}H{h['head']} at position {h['query']}")
        links += head_links
    for link in links:
        g.add_edge(link["source"], link["target"], weight=link["weight"])
    return g


def write_graphml(graph: Graph, path: str | Path, include_heads: bool = True) -> Path:
    """Write :func:`to_networkx`'s graph as GraphML to ``path`` (atomically)."""
    import networkx as nx

    text = "\n".join(nx.generate_graphml(to_networkx(graph, include_heads)))
    atomic_write_text(path, text + "\n")
    return Path(path)


def _dumps(data: dict) -> str:
    return json.dumps(data, indent=1) + "\n"


def write_json(graph: Graph, path: str | Path, slug: str | None = None) -> Path:
    """Write :func:`to_json` to ``path`` (atomically)."""
    atomic_write_text(path, _dumps(to_json(graph, slug=slug)))
    return Path(path)


def _check_slug(slug: str) -> None:
    if not slug or slug in (".", "..") or any(c in slug for c in "/\\") or slug == Path(METADATA_FILE).stem:
        raise ConfigError(f"slug {slug!r} cannot name a graph file: use letters, digits, '-' or '_'")


def read_index(folder: str | Path) -> list[dict]:
    """The graphs a served folder's ``graph-metadata.json`` lists (empty when it has none)."""
    index = Path(folder) / METADATA_FILE
    if not index.is_file():
        return []
    try:
        graphs = json.loads(index.read_text(encoding="utf-8"))["graphs"]
        if not all(isinstance(g["slug"], str) for g in graphs):
            raise TypeError("a graph's slug is not a string")
    except (ValueError, KeyError, TypeError) as err:
        raise StoreError(f"{index} is not a graph-metadata.json ({{\"graphs\": [{{\"slug\": ...}}, ...]}}): {err}") from err
    return graphs


def add_to_folder(data: dict, folder: str | Path) -> dict[str, Path]:
    """Put graph JSON ``data`` (from :func:`to_json`) into ``folder`` as circuit-tracer's
    ``create_graph_files`` does: ``{slug}.json``, and its metadata in ``graph-metadata.json``
    (replacing an entry with the same slug, keeping the others)."""
    slug = data["metadata"]["slug"]
    _check_slug(slug)
    folder = Path(folder)
    index = folder / METADATA_FILE
    graphs = [g for g in read_index(folder) if g["slug"] != slug]
    graphs.append({k: data["metadata"][k] for k in CORE_METADATA})
    atomic_write_text(folder / f"{slug}.json", _dumps(data))
    atomic_write_text(index, json.dumps({"graphs": graphs}, indent=2) + "\n")
    return {"server": folder / f"{slug}.json", "metadata": index}


def write_graph_files(graph: Graph, folder: str | Path, slug: str = "graph", scan: str | None = None) -> dict[str, Path]:
    """Write the graph into ``folder`` in the layout circuit-tracer's local server reads
    (``circuit_tracer.frontend.local_server.serve(data_dir=folder)``): ``{slug}.json`` plus an
    entry in ``graph-metadata.json``. Several graphs can share a folder (each under its own
    slug). Returns both paths."""
    return add_to_folder(to_json(graph, slug=slug, scan=scan), folder)


def write_all(graph: Graph, out: str | Path, stem: str = "graph") -> dict[str, Path]:
    """Write every export into ``out`` (what :meth:`Graph.write` and ``interp circuit trace`` do):

    * ``json``: ``{stem}.json``, the graph JSON (slug ``stem``);
    * ``graphml``: ``{stem}.graphml``; ``html``: ``{stem}.html``; ``graph``: ``{stem}.pt``;
    * ``server`` and ``metadata``: ``graph_files/{stem}.json`` and
      ``graph_files/graph-metadata.json``, the folder circuit-tracer's local server serves.
    """
    _check_slug(stem)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = to_json(graph, slug=stem)
    paths = {"json": out / f"{stem}.json"}
    atomic_write_text(paths["json"], _dumps(data))
    paths["graphml"] = write_graphml(graph, out / f"{stem}.graphml")
    paths["html"] = out / f"{stem}.html"
    atomic_write_text(paths["html"], graph.to_html())
    paths["graph"] = graph.save(out / f"{stem}.pt")
    paths.update(add_to_folder(data, out / SERVER_FOLDER))
    return paths
