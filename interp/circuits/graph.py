"""The attribution graph: plain data, plus pure functions to prune and score it.

Nodes are token embeddings, transcoder features at positions, error terms (one per
layer and position) and logit targets; ``adjacency[target, source]`` is the direct
effect of source on target in the frozen replacement model. Attention heads appear as
:class:`HeadPath` records that split an edge over the heads carrying it.

Influence and pruning follow circuit-tracer (Ameisen et al. 2025): rows of |adjacency|
are normalised to sum to one, a node's influence is its total (all-paths) normalised
effect on the logits weighted by their probabilities, nodes are kept until their
cumulative influence reaches ``node_threshold`` and edges (scored by normalised weight x
influence of their target) until ``edge_threshold``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import ConfigError, StoreError
from interp.io import atomic_write
from interp.results import Result

NodeKind = Literal["feature", "error", "embedding", "logit"]


@dataclass
class Node:
    kind: NodeKind
    layer: int
    """Transcoder layer; -1 for embeddings, n_layers for logits."""
    pos: int
    index: int | None
    """Feature index (features), token id (embeddings, single-token logits), else None."""
    activation: float | None
    """Feature activation, error-term norm, or the logit target's value."""
    label: str
    prob: float | None = None
    """A logit target's probability (single-token targets)."""
    influence: float | None = None
    """Total normalised influence on the logits (set by :func:`prune`)."""
    cumulative_influence: float | None = None
    """Share of the full graph's total influence held by the nodes at least as influential as
    this one, in (0, 1]: the most influential node has the smallest (set by :func:`prune`; it
    is circuit-tracer's and Neuronpedia's node ``influence``, which their viewers prune by)."""


@dataclass
class HeadPath:
    """Part of edge source -> target carried by head ``(layer, head)``, moved from the
    source's position to ``query``."""

    source: int
    target: int
    layer: int
    head: int
    query: int
    weight: float


@dataclass
class Graph(Result):
    """An attribution graph: nodes (features, error terms, input tokens, logit targets) and
    the direct effect of every source node on every target node.

    ``adjacency[t, s]`` is the direct effect of node ``s`` on node ``t`` in the frozen
    replacement model (attention patterns and normalisation scales held fixed): the source's
    value times the derivative of ``t`` with respect to it, i.e. the part of ``t``'s
    pre-activation (of a logit target's value) that ``s`` contributes directly. Positive
    edges excite, negative ones inhibit. ``head_paths`` splits an edge
    that goes through attention into the heads that carry it. Node indices are positions in
    ``nodes``; :meth:`index_of` finds them, :meth:`node_id` names them.

    It holds tensors, so :meth:`save` / :meth:`load` use one ``.pt`` file; :meth:`write`
    writes that file beside the Neuronpedia JSON, the GraphML and the HTML page.
    """

    stem: ClassVar[str] = "graph"
    title: ClassVar[str] = "Attribution graph"

    prompt: str
    tokens: list[int]
    token_strs: list[str]
    n_layers: int
    nodes: list[Node]
    adjacency: Float[Tensor, "n n"]
    """Direct effects, rows = targets, columns = sources."""
    logit_weights: Float[Tensor, " n"]
    """Probability weight of each logit node (zero elsewhere), summing to one."""
    logit_directions: Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    """[n_logits, d_vocab]: each logit target's direction over the vocabulary."""
    head_paths: list[HeadPath] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    """replacement and completeness scores of the full graph (and of the pruned one)."""
    node_threshold: float | None = None
    edge_threshold: float | None = None
    feature_info: dict[str, dict] = field(default_factory=dict)
    """Per feature node id: top tokens through the unembedding and top contexts."""
    model_name: str = ""
    seconds: float = 0.0
    """Time the attribution took."""
    transcoders_forced: dict | None = None
    """Set when transcoders trained on another model were used with ``force``: ``{"forced": True,
    "trained_on": fingerprint, "used_on": fingerprint}`` (:func:`interp.transcoders.loading.check_trained_on`)."""

    # -- access ----------------------------------------------------------------------

    def node_id(self, i: int) -> str:
        """Node id in the Neuronpedia / circuit-tracer convention."""
        n = self.nodes[i]
        if n.kind == "feature":
            return f"{n.layer}_{n.index}_{n.pos}"
        if n.kind == "error":
            return f"{n.layer}_-1_{n.pos}"
        if n.kind == "embedding":
            return f"E_{n.index}_{n.pos}"
        rank = sum(1 for m in self.nodes[:i] if m.kind == "logit")
        return f"{self.n_layers + 1}_{n.index if n.index is not None else f'd{rank}'}_{n.pos}"

    def index_of(self, kind: str, layer: int | None = None, pos: int | None = None, index: int | None = None) -> list[int]:
        """Indices of nodes matching the given fields."""
        return [
            i
            for i, n in enumerate(self.nodes)
            if n.kind == kind
            and (layer is None or n.layer == layer)
            and (pos is None or n.pos == pos)
            and (index is None or n.index == index)
        ]

    def edges(self) -> list[tuple[int, int]]:
        """(target, source) pairs with a non-zero weight."""
        t, s = torch.nonzero(self.adjacency, as_tuple=True)
        return list(zip(t.tolist(), s.tolist()))

    def in_edges(self, target: int) -> list[tuple[int, float]]:
        """``(source, weight)`` of every edge into node ``target``: ``weight`` is the source's
        direct effect on the target (``adjacency[target, source]``; negative = inhibits)."""
        row = self.adjacency[target]
        idx = torch.nonzero(row).flatten().tolist()
        return [(s, float(row[s])) for s in idx]

    def heads_of(self, source: int, target: int) -> list[HeadPath]:
        """The attention heads that carry the edge from ``source`` to ``target`` (empty when it
        goes only through the residual stream), each with its share of the weight."""
        return [p for p in self.head_paths if p.source == source and p.target == target]

    def __len__(self) -> int:
        return len(self.nodes)

    # -- persistence -----------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the graph to one ``.pt`` file (plain tensors, lists and dicts)."""
        data = {
            "version": 1,
            "fields": {
                k: v
                for k, v in asdict(self).items()
                if k not in ("adjacency", "logit_weights", "logit_directions", "nodes", "head_paths")
            },
            "nodes": [asdict(n) for n in self.nodes],
            "head_paths": [asdict(p) for p in self.head_paths],
            "adjacency": torch.nonzero(self.adjacency).T.contiguous(),
            "adjacency_values": self.adjacency[self.adjacency != 0],
            "n": len(self.nodes),
            "logit_weights": self.logit_weights,
            "logit_directions": self.logit_directions,
        }
        path = Path(path)
        with atomic_write(path) as tmp:
            torch.save(data, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Graph:
        """Read a graph written by :meth:`save` (``.pt``), or graph JSON (``.json``: interp's
        ``graph.json`` or a circuit-tracer / Neuronpedia graph file), or a folder of
        circuit-tracer's graph files (``graph-metadata.json`` + ``{slug}.json``, one graph);
        see :func:`interp.circuits.formats.read_graph`."""
        if Path(path).is_dir() or Path(path).suffix == ".json":
            from interp.circuits.formats import read_graph

            return read_graph(path)
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no graph file at {path}; write one with Graph.save or `interp circuit trace`")
        try:
            data = torch.load(path, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
            raise StoreError(f"{path} is not a graph written by Graph.save: {err}") from err
        n = data["n"]
        adjacency = torch.zeros(n, n)
        adjacency[data["adjacency"][0], data["adjacency"][1]] = data["adjacency_values"]
        return cls(
            nodes=[Node(**d) for d in data["nodes"]],
            head_paths=[HeadPath(**d) for d in data["head_paths"]],
            adjacency=adjacency,
            logit_weights=data["logit_weights"],
            logit_directions=data["logit_directions"],
            **data["fields"],
        )

    # -- display ---------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Nodes of each kind (feature, error, embedding, logit)."""
        return {k: sum(1 for n in self.nodes if n.kind == k) for k in ("feature", "error", "embedding", "logit")}

    def summary(self) -> str:
        """The prompt, how many nodes of each kind, edges, head paths and scores; then the
        time the attribution took (what ``interp circuit trace`` prints)."""
        kinds = self.counts()
        scores = ", ".join(f"{k} {v:.3f}" for k, v in self.scores.items())
        return (
            f"Graph of {self.prompt!r}: {kinds['feature']} features, {kinds['error']} error nodes, "
            f"{kinds['embedding']} tokens, {kinds['logit']} logits, {len(self.edges())} edges, "
            f"{len(self.head_paths)} head paths; {scores}\n"
            f"attribution (edge matrix) took {self.seconds:.2f} s"
        )

    def to_json(self) -> dict:
        """The graph as Neuronpedia / circuit-tracer graph JSON (see :mod:`interp.circuits.export`)."""
        from interp.circuits.export import to_json

        return to_json(self)

    def to_html(self) -> str:
        """A self-contained HTML page with the interactive graph and its node table (offline)."""
        from interp.circuits.html import to_html

        return to_html(self)

    def write(self, directory: str | Path, stem: str | None = None) -> dict[str, Path]:
        """Write ``graph.json`` (circuit-tracer / Neuronpedia graph JSON), ``graph.graphml``,
        ``graph.html``, ``graph.pt`` (:meth:`save`) and the folder circuit-tracer's local
        server reads, ``graph_files/`` (``graph.json`` + ``graph-metadata.json``), into
        ``directory``; returns their paths by kind (see
        :func:`interp.circuits.export.write_all`)."""
        from interp.circuits.export import write_all

        return write_all(self, directory, stem or self.stem)

    def __repr__(self) -> str:
        from interp.reports import clip, plain_repr

        kinds = self.counts()
        scores = ", ".join(f"{k} {v:.3f}" for k, v in self.scores.items())
        head = f"{clip(self.prompt)}, {len(self.nodes)} nodes, {len(self.edges())} edges"
        return plain_repr("Graph", head, [
            f"{kinds['feature']} features, {kinds['error']} error nodes, {kinds['logit']} logits, {len(self.head_paths)} head paths",
            *([scores] if scores else []),
        ])

    def _repr_html_(self) -> str:
        from interp.circuits.html import notebook_summary

        return notebook_summary(self)


# -- influence, pruning, scores ------------------------------------------------------


def normalize_rows(matrix: Tensor) -> Tensor:
    a = matrix.abs()
    return a / a.sum(1, keepdim=True).clamp_min(1e-12)


def influence(adjacency: Tensor, logit_weights: Tensor, max_iter: int = 10_000) -> Tensor:
    """Total influence of each node on the weighted logits: w (A + A^2 + ...), A row-normalised."""
    return _influence(normalize_rows(adjacency), logit_weights, max_iter)


def _influence(a: Tensor, logit_weights: Tensor, max_iter: int = 10_000) -> Tensor:
    """:func:`influence` of an already row-normalised |adjacency| ``a``."""
    current = logit_weights @ a
    total = current.clone()
    for _ in range(max_iter):
        if not bool(current.abs().gt(1e-12).any()):
            return total
        current = current @ a
        total += current
    raise RuntimeError("influence did not converge: the graph has a cycle (edges must go forward in the model)")


def cumulative_influence(node_influence: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """Each node's share of the total influence held by the nodes at least as influential as
    it (sorted descending, cumulated, divided by the total), as circuit-tracer's ``prune_graph``
    computes the ``influence`` its graph files carry."""
    values, order = torch.sort(node_influence, descending=True)
    out = torch.zeros_like(node_influence)
    out[order] = torch.cumsum(values, 0) / values.sum().clamp_min(1e-12)
    return out


def _cumulative_cut(scores: Tensor, threshold: float) -> Tensor:
    """Smallest score kept so that the kept scores sum to ``threshold`` of the total (scores
    are never negative; only the positive ones are sorted, a few of the n^2 edge scores).
    A threshold of 1 keeps every positive score, however small: float32 shares reach 1.0
    before a tail of scores too small to move the total, and where that tail ends depends
    on the order of summation (the viewer's port sums in another order)."""
    values = scores[scores > 0]
    if values.numel() == 0:
        return torch.tensor(float("inf"))
    if threshold >= 1.0:
        return values.min()
    values = torch.sort(values, descending=True).values
    total = values.sum()
    cum = torch.cumsum(values, 0) / total
    idx = min(int(torch.searchsorted(cum, torch.tensor(threshold))), len(values) - 1)
    return values[idx]


def prune(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Graph:
    """Keep the nodes and edges that carry most of the influence on the logits.

    Embeddings and logits are always kept; a kept feature or error node must have an
    outgoing kept edge, and a kept feature an incoming one. Returns a new, smaller graph.
    """
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1], got {value}")
    kinds = [n.kind for n in graph.nodes]
    always = torch.tensor([k in ("embedding", "logit") for k in kinds])
    feature = torch.tensor([k == "feature" for k in kinds])
    node_infl = influence(graph.adjacency, graph.logit_weights)
    cumulative = cumulative_influence(node_infl)
    keep = (node_infl >= _cumulative_cut(node_infl, node_threshold)) & (node_infl > 0) | always
    pruned = graph.adjacency * keep[:, None] * keep[None, :]
    norm = normalize_rows(pruned)
    edge_scores = norm * (_influence(norm, graph.logit_weights) + graph.logit_weights)[:, None]
    edge_keep = (edge_scores >= _cumulative_cut(edge_scores, edge_threshold)) & (edge_scores > 0)
    while True:
        edge_keep &= keep[:, None] & keep[None, :]
        new = keep & (edge_keep.any(0) | always) & (edge_keep.any(1) | ~feature)
        if torch.equal(new, keep):
            break
        keep = new
    idx = torch.nonzero(keep).flatten()
    remap = {int(old): new for new, old in enumerate(idx.tolist())}
    nodes = []
    for old in idx.tolist():
        n = graph.nodes[old]
        nodes.append(Node(**{**asdict(n), "influence": float(node_infl[old]), "cumulative_influence": float(cumulative[old])}))
    adjacency = (graph.adjacency * edge_keep)[idx][:, idx]
    out = Graph(
        prompt=graph.prompt,
        tokens=list(graph.tokens),
        token_strs=list(graph.token_strs),
        n_layers=graph.n_layers,
        nodes=nodes,
        adjacency=adjacency,
        logit_weights=graph.logit_weights[idx],
        logit_directions=graph.logit_directions,
        head_paths=[
            HeadPath(**{**asdict(p), "source": remap[p.source], "target": remap[p.target]})
            for p in graph.head_paths
            if p.source in remap and p.target in remap and bool(edge_keep[p.target, p.source])
        ],
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        feature_info=dict(graph.feature_info),
        model_name=graph.model_name,
        seconds=graph.seconds,
    )
    out.scores = {**{k: v for k, v in graph.scores.items() if not k.startswith("pruned_")}}
    out.scores.update({f"pruned_{k}": v for k, v in graph_scores(out).items()})
    return out


def graph_scores(graph: Graph) -> dict[str, float]:
    """Replacement and completeness scores (circuit-tracer's definitions).

    * replacement: of the influence reaching the logits from the graph's inputs (token
      embeddings and error terms), the fraction that starts at tokens, i.e. is explained
      by features rather than by what the transcoders miss;
    * completeness: the fraction of each node's incoming |weight| that comes from
      non-error nodes, averaged with each node's influence (logits included) as weight.
    """
    kinds = [n.kind for n in graph.nodes]
    error = torch.tensor([k == "error" for k in kinds])
    token = torch.tensor([k == "embedding" for k in kinds])
    a = normalize_rows(graph.adjacency)
    infl = _influence(a, graph.logit_weights)
    from_tokens = float(infl[token].sum())
    from_errors = float(infl[error].sum())
    replacement = from_tokens / max(from_tokens + from_errors, 1e-12)
    has_inputs = a.sum(1) > 0
    non_error = torch.where(has_inputs, 1.0 - a[:, error].sum(1), torch.zeros(()))
    weight = (infl + graph.logit_weights) * has_inputs
    completeness = float((non_error * weight).sum() / weight.sum().clamp_min(1e-12))
    return {"replacement": replacement, "completeness": completeness}
