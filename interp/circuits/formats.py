"""Reading attribution graphs back into an interp :class:`~interp.circuits.graph.Graph`:
interp's ``graph.json``, the ``{slug}.json`` files circuit-tracer's ``create_graph_files``
writes (and Neuronpedia serves), and their folders (``graph-metadata.json`` + ``{slug}.json``).

What the files hold comes back: nodes (kind, layer, position, feature or token, activation,
label, a logit's probability), the pruned edges, the prompt and its tokens, the thresholds,
scores and (from interp's files) the attention-head paths. A node's ``influence`` in these
files is its *cumulative* influence, so it comes back as ``Node.cumulative_influence`` and
``Node.influence`` stays None. What they do not hold stays empty: the logit directions over
the vocabulary and each feature's top tokens and contexts (``feature_info``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from interp.circuits.export import METADATA_FILE, read_index
from interp.circuits.graph import Graph, HeadPath, Node
from interp.errors import DataError, StoreError

KINDS = {
    "cross layer transcoder": "feature",
    "transcoder": "feature",  # interp before the circuit-tracer names
    "clt": "feature",
    "mlp reconstruction error": "error",
    "mlp_error": "error",
    "embedding": "embedding",
    "logit": "logit",
}
"""Node kind of each ``feature_type`` (lower case) that graph files use."""
SKIPPED = {"attention head"}
"""``feature_type`` values read past: the head nodes older interp files kept among the nodes."""
_OUTPUT = re.compile(r'^Output "(.*)" \(p=[^)]*\)$', re.DOTALL)


def read_graph(source: str | Path, slug: str | None = None, d_vocab: int | None = None) -> Graph:
    """Read a graph file (``.json``) or a folder of circuit-tracer graph files into a Graph.

    A folder lists its graphs in ``graph-metadata.json``; ``slug`` picks one (needed when it
    lists several). ``d_vocab``, the model's vocabulary size, tells logit nodes that are no
    single token (circuit-tracer's virtual indices, ``d_vocab`` and up) from tokens; interp's
    own files record it.
    """
    path = Path(source)
    if path.is_dir():
        path = path / f"{_pick_slug(path, slug)}.json"
    if not path.is_file():
        raise StoreError(f"no graph file at {path}; write one with `interp circuit trace` or Graph.write")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise StoreError(f"{path} is not graph JSON: {err}") from err
    return from_json(data, d_vocab=d_vocab, where=str(path))


def _pick_slug(folder: Path, slug: str | None) -> str:
    if not (folder / METADATA_FILE).is_file():
        raise StoreError(f"{folder} has no {METADATA_FILE}: give the graph's .json file, or a folder circuit-tracer "
                         "or `interp circuit trace` (its graph_files/) wrote")
    slugs = [g["slug"] for g in read_index(folder)]
    if slug is not None:
        if slug not in slugs:
            raise StoreError(f"{folder / METADATA_FILE} lists no graph {slug!r}; it lists {', '.join(map(repr, slugs)) or 'none'}")
        return slug
    if len(slugs) != 1:
        raise StoreError(f"{folder / METADATA_FILE} lists {len(slugs)} graphs ({', '.join(map(repr, slugs))}): "
                         "pass slug= to pick one")
    return slugs[0]


def _split_id(node_id: str, where: str) -> tuple[str, int, int]:
    """``a_b_c`` -> ("a", b, c), the form of feature, embedding and logit ids."""
    parts = node_id.rsplit("_", 2)
    try:
        return parts[0], int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        raise DataError(f"{where}: node id {node_id!r} is not of the form LAYER_INDEX_POS") from None


def from_json(data: Mapping, d_vocab: int | None = None, where: str = "graph JSON") -> Graph:
    """A Graph from parsed graph JSON (see :func:`read_graph`)."""
    try:
        meta, raw_nodes, raw_links = data["metadata"], data["nodes"], data["links"]
        prompt_tokens = list(meta["prompt_tokens"])
    except (KeyError, TypeError) as err:
        raise DataError(f"{where} is not attribution-graph JSON: it has no {err}") from err
    extras = data.get("interp") or {}
    d_vocab = d_vocab if d_vocab is not None else extras.get("d_vocab")
    nodes: list[Node] = []
    index: dict[str, int] = {}
    skipped: set[str] = set()
    weights = []
    for raw in raw_nodes:
        kind = KINDS.get(str(raw.get("feature_type", "")).lower())
        if kind is None:
            if str(raw.get("feature_type", "")).lower() in SKIPPED:
                skipped.add(raw["node_id"])
                continue
            raise DataError(f"{where}: node {raw.get('node_id')!r} has feature_type {raw.get('feature_type')!r}, "
                            f"which interp cannot read (it reads {', '.join(sorted(KINDS))})")
        pos = int(raw["ctx_idx"])
        clerp = raw.get("clerp") or ""
        activation = raw.get("activation")
        if kind == "feature":
            layer, feature = int(raw["layer"]), _split_id(raw["node_id"], where)[1]
            node = Node("feature", layer, pos, feature, activation, clerp or f"L{layer} #{feature}")
        elif kind == "error":
            node = Node("error", int(raw["layer"]), pos, None, activation, f"L{int(raw['layer'])} error")
        elif kind == "embedding":
            token = _split_id(raw["node_id"], where)[1]
            node = Node("embedding", -1, pos, token, None, prompt_tokens[pos] if pos < len(prompt_tokens) else "")
        else:
            vocab = _split_id(raw["node_id"], where)[1]
            token = vocab if d_vocab is None or vocab < d_vocab else None
            match = _OUTPUT.match(clerp)
            prob = float(raw.get("token_prob") or 0.0)
            node = Node("logit", int(raw["layer"]) - 1, pos, token, activation, match.group(1) if match else clerp,
                        prob=prob if token is not None else None)
            weights.append((len(nodes), prob))
        node.cumulative_influence = raw.get("influence") if kind != "logit" else None
        index[raw["node_id"]] = len(nodes)
        nodes.append(node)
    if not weights:
        raise DataError(f"{where} has no logit node: an attribution graph explains at least one logit")
    n_layers = nodes[weights[0][0]].layer
    adjacency = torch.zeros(len(nodes), len(nodes))
    for link in raw_links:
        source, target = link["source"], link["target"]
        if source in skipped or target in skipped:
            continue
        if source not in index or target not in index:
            raise DataError(f"{where}: link {source} -> {target} names a node that is not in the graph")
        adjacency[index[target], index[source]] = float(link["weight"])
    logit_weights = torch.zeros(len(nodes))
    probs = torch.tensor([p for _, p in weights])
    logit_weights[[i for i, _ in weights]] = probs / probs.sum() if float(probs.sum()) > 0 else 1.0 / len(weights)
    tokens = {n.pos: n.index for n in nodes if n.kind == "embedding"}
    pruning = meta.get("pruning_settings") or {}
    return Graph(
        prompt=str(meta.get("prompt", "")),
        tokens=[tokens.get(p, -1) for p in range(len(prompt_tokens))],
        token_strs=prompt_tokens,
        n_layers=n_layers,
        nodes=nodes,
        adjacency=adjacency,
        logit_weights=logit_weights,
        head_paths=[
            HeadPath(index[p["source"]], index[p["target"]], int(p["layer"]), int(p["head"]), int(p["query"]),
                     float(p["weight"]))
            for p in extras.get("head_paths", [])
            if p["source"] in index and p["target"] in index
        ],
        scores={k: float(v) for k, v in (meta.get("scores") or {}).items()},
        node_threshold=pruning.get("node_threshold", meta.get("node_threshold")),
        edge_threshold=pruning.get("edge_threshold"),
        model_name=str(meta.get("scan", "")),
    )
