"""Attribution: the direct effect of every node on every later node, for one prompt.

Two kinds of edge, following Dunefsky et al. (2024) and circuit-tracer (Ameisen et al. 2025):

* **input-invariant** virtual weights: feature -> later feature (decoder row . encoder
  column), token -> feature (de-embedding) and feature -> logit (decoder row . unembedding),
  see :func:`virtual_weights`, :func:`deembedding`, :func:`direct_logit_effects`;
* **input-dependent** edges: in the frozen replacement model (attention patterns,
  normalisation scales and the logit soft-cap ratio fixed, see
  :mod:`interp.circuits.replacement`) every target is linear in the sources, and
  edge(source -> target) = source value x d target / d source. A target is a feature's
  pre-activation or a logit direction (a logit, or a logit difference); sources are active
  features (every layer, feature, position), error terms and token embeddings. Edges are
  computed in the residual-stream formulation (:func:`interp.circuits.edges.edge_matrix`): each backward pass,
  vmapped over ``batch_size`` targets, is seeded where the targets read the residual stream
  and gives their gradient at every MLP write, from which every source reads its edge.

Attention heads: :func:`head_paths` splits an edge into the heads that carry it, the OV
circuit weighted by the frozen attention pattern (Dunefsky et al.): the source's write at
key position k enters head (l, h) through its value, is moved to query position q with
weight pattern[h, q, k], and reaches the target along every later path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.circuits.dictionary import Dictionary
from interp.circuits.edges import _logit_rank, _seeds, edge_matrix
from interp.circuits.graph import Graph, HeadPath, Node, graph_scores
from interp.circuits.replacement import CleanState, ReplacementModel
from interp.circuits.threads import choose_threads
from interp.errors import ConfigError, TargetError
from interp.transcoders.clt import CrossLayerTranscoder

log = logging.getLogger(__name__)


@dataclass
class LogitTarget:
    """A scalar read from the last position's logits: ``logits[-1] @ direction``."""

    label: str
    """How the target is shown, e.g. the token string or "valid - invalid years"."""
    direction: Float[Tensor, " d_vocab"]
    """Weights over the vocabulary; a demeaned one-hot for a single token's logit."""
    token: int | None = None
    """The token id for a single-token target (None for a logit difference)."""

    def __repr__(self) -> str:
        token = f", token {self.token}" if self.token is not None else ""
        return f"LogitTarget({self.label!r}{token}, direction over {self.direction.shape[-1]} tokens)"


def token_target(model, token: int | str) -> LogitTarget:
    """The logit of one token, minus the mean logit (softmax ignores a shared shift)."""
    token_id = resolve_token(model, token) if isinstance(token, str) else int(token)
    d_vocab = model.cfg.d_vocab
    if not 0 <= token_id < d_vocab:
        raise TargetError(f"token id {token_id} is outside the vocabulary (0..{d_vocab - 1})")
    direction = torch.full((d_vocab,), -1.0 / d_vocab)
    direction[token_id] += 1.0
    return LogitTarget(label=token_str(model, token_id), direction=direction, token=token_id)


def difference_target(model, positive: Sequence[int], negative: Sequence[int], label: str) -> LogitTarget:
    """Mean logit of ``positive`` tokens minus mean logit of ``negative`` tokens."""
    if not positive or not negative:
        raise TargetError("a logit difference needs at least one positive and one negative token")
    direction = torch.zeros(model.cfg.d_vocab)
    direction[list(positive)] += 1.0 / len(positive)
    direction[list(negative)] -= 1.0 / len(negative)
    return LogitTarget(label=label, direction=direction)


def token_str(model, token_id: int) -> str:
    tok = getattr(model, "tokenizer", None)
    return tok.decode([token_id]) if tok is not None else f"<{token_id}>"


def resolve_token(model, text: str) -> int:
    """The id of the single token ``text``; tries it with and without a leading space."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise TargetError("this model has no tokenizer: give the target as a token id")
    vocab = tok.get_vocab()
    candidates = [text, text.strip(), " " + text.strip(), "Ġ" + text.strip()]
    for cand in candidates:
        ids = tok.encode(cand, add_special_tokens=False)
        if len(ids) == 1 and tok.decode(ids).strip() == text.strip():
            return ids[0]
        if cand in vocab:
            return vocab[cand]
    import difflib

    close = difflib.get_close_matches(text.strip(), [t.lstrip("Ġ ") for t in vocab], n=5)
    raise TargetError(
        f"target {text!r} is not a single token of this model's vocabulary"
        + (f"; close tokens: {', '.join(repr(c) for c in close)}" if close else "")
        + ". Pick one token (e.g. the first token of the word)."
    )


@dataclass
class AttributionConfig:
    """How the edge matrix is computed: what :func:`attribute` reads."""

    batch_size: int = 64
    """Targets per backward pass (rows of one-hot gradient seeds)."""
    progress: bool = True
    """Show a progress bar over the backward passes."""
    threads: int | None = None
    """CPU threads torch uses during attribution (default: chosen for the problem and machine)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")


def _node_list(rm: ReplacementModel, state: CleanState, targets: Sequence[LogitTarget], model) -> list[Node]:
    n_pos = len(state.tokens)
    nodes: list[Node] = []
    for layer, acts in state.acts.items():
        pos, feat = torch.nonzero(acts, as_tuple=True)
        order = torch.argsort(pos * acts.shape[1] + feat)
        for p, f in zip(pos[order].tolist(), feat[order].tolist()):
            nodes.append(Node("feature", layer, p, f, float(acts[p, f]), f"L{layer} #{f}"))
    for layer in range(rm.n_layers):
        for p in range(n_pos):
            err = state.errors[layer][p]
            nodes.append(Node("error", layer, p, None, float(err.norm()), f"L{layer} error"))
    for p, t in enumerate(state.tokens.tolist()):
        nodes.append(Node("embedding", -1, p, t, None, token_str(model, t)))
    last_logits = state.logits[-1]
    probs = torch.softmax(last_logits, -1)
    for target in targets:
        value = float(last_logits @ target.direction.to(last_logits))
        prob = float(probs[target.token]) if target.token is not None else None
        nodes.append(Node("logit", rm.n_layers, n_pos - 1, target.token, value, target.label, prob=prob))
    return nodes


def attribute(
    model,
    transcoders: Mapping[int, object] | CrossLayerTranscoder | Dictionary,
    tokens: Int[Tensor, " pos"],
    targets: Sequence[LogitTarget],
    cfg: AttributionConfig | None = None,
    prompt: str | None = None,
) -> Graph:
    """The full (unpruned) attribution graph of ``tokens`` for the given logit targets.

    ``transcoders``: ``{layer: transcoder}`` (interp's or SAELens'), or one cross-layer
    transcoder (:func:`interp.transcoders.load_run` of a CLT run), whose features each read at
    their layer and write to it and every later CLT layer (see :mod:`interp.circuits.dictionary`).
    """
    cfg = cfg or AttributionConfig()
    if len(targets) == 0:
        raise TargetError("give at least one logit target")
    tokens = torch.as_tensor(tokens).reshape(-1)
    if tokens.numel() == 0:
        raise TargetError("the prompt is empty")
    from interp.models import check_tokens

    check_tokens(model, tokens, error=TargetError)
    start = time.perf_counter()
    with choose_threads(cfg.threads):  # each phase on the thread count of interp.circuits.threads
        rm = ReplacementModel(model, transcoders)
        state = rm.clean_state(tokens)
        nodes = _node_list(rm, state, targets, model)
    adjacency = edge_matrix(rm, state, nodes, targets, cfg.batch_size, cfg.progress, cfg.threads)
    with choose_threads(cfg.threads):
        graph = _graph(model, rm, tokens, nodes, adjacency, targets, prompt)
    graph.seconds = time.perf_counter() - start
    log.info("attributed %d nodes in %.2f s", len(nodes), graph.seconds)
    return graph


def _graph(model, rm: ReplacementModel, tokens: Tensor, nodes: list[Node], adjacency: Tensor,
           targets: Sequence[LogitTarget], prompt: str | None) -> Graph:
    """The full graph of an attribution, with its scores."""
    weights = torch.zeros(len(nodes))
    logit_idx = [i for i, n in enumerate(nodes) if n.kind == "logit"]
    probs = torch.tensor([n.prob if n.prob is not None else 1.0 for n in (nodes[i] for i in logit_idx)])
    weights[logit_idx] = probs / probs.sum().clamp_min(1e-12)
    graph = Graph(
        prompt=prompt if prompt is not None else "".join(n.label for n in nodes if n.kind == "embedding"),
        tokens=tokens.tolist(),
        token_strs=[token_str(model, t) for t in tokens.tolist()],
        n_layers=rm.n_layers,
        nodes=nodes,
        adjacency=adjacency,
        logit_weights=weights,
        logit_directions=torch.stack([t.direction for t in targets]),
    )
    graph.scores = graph_scores(graph)
    return graph


def _writes_by_layer(rm: ReplacementModel, state: CleanState, node: Node) -> list[tuple[int, Tensor]]:
    """What a source node adds to the residual stream at its position, as ``(layer, write)``
    per MLP output it writes through (-1 for an embedding): one for an error term or a per-layer
    transcoder's feature, its own and every later CLT layer for a cross-layer transcoder's."""
    if node.kind == "feature":
        d = rm.dictionary
        rows = d.decoder_rows(node.layer, torch.tensor([node.index]))[0]
        act = state.acts[node.layer][node.pos, node.index]
        return [(out, act * row) for out, row in zip(d.output_layers(node.layer), rows)]
    if node.kind == "error":
        return [(node.layer, state.errors[node.layer][node.pos])]
    return [(-1, state.embed[node.pos])]


def _ln_input(rm: ReplacementModel, state: CleanState, layer: int, pos: Tensor, vec: Tensor) -> Tensor:
    """Block ``layer``'s frozen ln1 applied to residual writes ``vec`` [n, d_model] at positions
    ``pos`` [n] (without its bias, a constant): what each write adds to the attention's input.
    In post-norm blocks (OLMo 2/3) attention reads the residual stream itself: ``vec`` unchanged."""
    from interp.hooks import input_norm

    model = rm.model
    if input_norm(model, layer, "attn") is None:
        return vec
    if model.cfg.normalization_type in ("LN", "LNPre"):
        vec = vec - vec.mean(-1, keepdim=True)
    name = f"blocks.{layer}.ln1.hook_scale"
    if name in state.frozen:
        vec = vec / state.frozen[name][0, pos.to(vec.device)]
    w = getattr(model.blocks[layer].ln1, "w", None)
    return vec * w if isinstance(w, Tensor) else vec


def head_paths(
    rm: ReplacementModel,
    state: CleanState,
    graph: Graph,
    batch_size: int = 64,
    min_fraction: float = 0.05,
    same_position: bool = False,
    threads: int | None = None,
) -> list[HeadPath]:
    """Split each edge of ``graph`` over the attention heads that carry it (one hop).

    For an edge source -> target, head (l, h) at query position q carries
    ``pattern[h, q, k] * (ln1(write_source) @ W_V[h]) . d target / d z[q, h]`` where k is
    the source's position: the source's write enters the head's value directly from the
    residual stream and everything downstream of the head is in the gradient (a cross-layer
    transcoder's feature enters a head's value with its writes to the layers before the head's). Paths whose
    first hop is another component (a later MLP, a skip connection) are not split. Only
    moves between positions (q != k) are kept unless ``same_position``. ``threads`` as in
    :class:`AttributionConfig`.
    """
    targets = sorted({i for i, _ in graph.edges()})
    if not targets:
        return []
    model = rm.model
    batch = min(batch_size, len(targets))
    with torch.no_grad():
        lin = rm.linearised(state)
    z = lin.z
    logit_rank = _logit_rank(graph.nodes)
    z_layers = sorted(z)
    # each source's write, through each layer's frozen ln1 and W_V: [n_nodes, head, d_head]
    sources = sorted({s for _, s in graph.edges()})
    src_pos = torch.tensor([graph.nodes[s].pos for s in sources])
    src_layer = torch.tensor([graph.nodes[s].layer for s in sources])
    slot = {s: j for j, s in enumerate(sources)}
    with torch.no_grad():
        by_layer = [_writes_by_layer(rm, state, graph.nodes[s]) for s in sources]
        values = {}
        for layer in z_layers:  # what each source has written when block ``layer``'s attention reads
            writes = torch.stack([sum((w for out, w in parts if out < layer), torch.zeros_like(parts[0][1]))
                                  for parts in by_layer])
            values[layer] = torch.einsum("sd,hde->she", _ln_input(rm, state, layer, src_pos, writes), model.blocks[layer].attn.W_V)
    paths: list[HeadPath] = []
    with choose_threads(threads) as chooser:
        chooser.expect(-(-len(targets) // batch))
        for start in range(0, len(targets), batch):
            chunk = targets[start : start + batch]
            outputs, seeds = _seeds(rm, state, graph.nodes, chunk, graph.logit_directions, logit_rank, lin)
            with chooser.run(float(len(chunk))):
                gz = lin.grad(outputs, seeds, [z[layer] for layer in z_layers])
            with torch.no_grad():
                for b, row in enumerate(chunk):
                    edges = graph.in_edges(row)
                    idx = torch.tensor([slot[s] for s, _ in edges])
                    weight = torch.tensor([abs(w) for _, w in edges])
                    for li, layer in enumerate(z_layers):
                        ok = src_layer[idx] < layer
                        if not bool(ok.any()):
                            continue
                        sel = idx[ok]
                        pattern = state.frozen[f"blocks.{layer}.attn.hook_pattern"][0]  # [head, q, k]
                        # carried[s, q, h] = pattern[h, q, k_s] * values[s, h] . gz[q, h]
                        carried = pattern[:, :, src_pos[sel]].permute(2, 1, 0) * torch.einsum(
                            "she,qhe->sqh", values[layer][sel], gz[li][b]
                        )
                        keep = (carried != 0) & (carried.abs() >= min_fraction * weight[ok][:, None, None])
                        q_idx = torch.arange(carried.shape[1])
                        keep &= q_idx[None, :, None] >= src_pos[sel][:, None, None]
                        if not same_position:
                            keep &= q_idx[None, :, None] != src_pos[sel][:, None, None]
                        for si, q, h in torch.nonzero(keep).tolist():
                            paths.append(HeadPath(sources[int(sel[si])], row, layer, h, q, float(carried[si, q, h])))
    return paths
