"""Attribution: the direct effect of every node on every later node, for one prompt.

Two kinds of edge, following Dunefsky et al. (2024) and circuit-tracer (Ameisen et al. 2025):

* **input-invariant** virtual weights: feature -> later feature (decoder row . encoder
  column), token -> feature (de-embedding) and feature -> logit (decoder row . unembedding),
  see :func:`virtual_weights`, :func:`deembedding`, :func:`direct_logit_effects`;
* **input-dependent** edges: in the frozen replacement model (attention patterns and
  LayerNorm scales fixed, see :mod:`interp.circuits.replacement`) every target is linear in
  the sources, and edge(source -> target) = source value x d target / d source. A target is
  a feature's pre-activation or a logit direction (a logit, or a logit difference); sources
  are active features (every layer, feature, position), error terms and token embeddings.
  One forward pass on a batch of copies of the prompt serves all backward passes; each
  backward pass seeds a different target in each batch row (one-hot gradient seeds), so
  ``batch_size`` edges rows are computed per backward pass instead of one.

Attention heads: :func:`head_paths` splits an edge into the heads that carry it, the OV
circuit weighted by the frozen attention pattern (Dunefsky et al.): the source's write at
key position k enters head (l, h) through its value, is moved to query position q with
weight pattern[h, q, k], and reaches the target along every later path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.circuits.graph import Graph, HeadPath, Node, graph_scores
from interp.circuits.replacement import CleanState, Linearised, ReplacementModel
from interp.circuits.threads import choose_threads
from interp.errors import ConfigError, TargetError

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
    transcoders: dict[int, object],
    tokens: Int[Tensor, " pos"],
    targets: Sequence[LogitTarget],
    cfg: AttributionConfig | None = None,
    prompt: str | None = None,
) -> Graph:
    """The full (unpruned) attribution graph of ``tokens`` for the given logit targets."""
    cfg = cfg or AttributionConfig()
    if len(targets) == 0:
        raise TargetError("give at least one logit target")
    tokens = torch.as_tensor(tokens).reshape(-1)
    if tokens.numel() == 0:
        raise TargetError("the prompt is empty")
    start = time.perf_counter()
    rm = ReplacementModel(model, transcoders)
    state = rm.clean_state(tokens)
    nodes = _node_list(rm, state, targets, model)
    adjacency = edge_matrix(rm, state, nodes, targets, cfg.batch_size, cfg.progress, cfg.threads)
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
    graph.seconds = time.perf_counter() - start
    log.info("attributed %d nodes in %.2f s", len(nodes), graph.seconds)
    return graph


class _Sources:
    """Every source node's write, grouped as the backward pass delivers their gradients.

    A source at layer L adds ``write`` to the residual stream through layer L's MLP output
    (the embeddings through ``blocks.0.hook_resid_pre``), so its edge to a target is
    ``write . d target / d mlp_out[L][pos]``. Sources are read sparsely: per layer, the
    error term and the active features' writes ``activation x W_dec[feature]`` at each
    position are packed into a [pos, slots, d_model] block, which reads a batch of targets'
    gradients with one batched matmul over positions.
    """

    def __init__(self, rm: ReplacementModel, state: CleanState, nodes: Sequence[Node]) -> None:
        n_pos = len(state.tokens)
        entries: dict[int, list[tuple[int, int, int]]] = {}  # layer (-1: embeddings) -> (pos, slot order, column)
        for i, node in enumerate(nodes):
            if node.kind == "feature":
                entries.setdefault(node.layer, []).append((node.pos, node.index + 1, i))
            elif node.kind in ("error", "embedding"):
                entries.setdefault(node.layer, []).append((node.pos, 0, i))
        self.blocks: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        """Per layer: (packed writes [pos, slots, d_model], valid [pos, slots], columns of the
        valid slots in (pos, slot) order, number of valid slots before each position [pos + 1])."""
        for layer, rows in entries.items():
            rows.sort()
            pos = torch.tensor([p for p, _, _ in rows])
            counts = torch.bincount(pos, minlength=n_pos)
            before = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
            slot = torch.arange(len(rows)) - before[pos]
            writes = _writes(rm, state, layer, pos, torch.tensor([order - 1 for _, order, _ in rows]))
            packed = writes.new_zeros(n_pos, int(counts.max()), writes.shape[1])
            packed[pos.to(packed.device), slot.to(packed.device)] = writes
            valid = torch.zeros(n_pos, packed.shape[1], dtype=torch.bool, device=packed.device)
            valid[pos.to(packed.device), slot.to(packed.device)] = True
            self.blocks[layer] = (packed, valid, torch.tensor([i for _, _, i in rows]), before)

    def fill(self, out: Tensor, layer: int, grad: Tensor) -> None:
        """Write the edges from layer ``layer``'s sources (-1: embeddings) into ``out`` ([k,
        n_nodes], one row per target), given the targets' gradient [k, n, d_model] at those
        sources' writes at the first n positions (the targets read nothing later)."""
        if layer not in self.blocks:
            return
        packed, valid, cols, before = self.blocks[layer]
        n = grad.shape[1]
        # [n, slots, d] @ [n, d, k] -> [n, slots, k]: each position's sources read its gradient
        values = torch.bmm(packed[:n], grad.permute(1, 2, 0))[valid[:n]]
        out.index_copy_(1, cols[: int(before[n])].to(out.device), values.T.to(out))


def _logit_rank(nodes: Sequence[Node]) -> dict[int, int]:
    """Each logit node's index among the logit nodes (its row of the logit directions)."""
    return {i: r for r, i in enumerate(i for i, node in enumerate(nodes) if node.kind == "logit")}


def _seeds(rm: ReplacementModel, state: CleanState, nodes: Sequence[Node], chunk: Sequence[int],
           directions: Tensor, logit_rank: dict[int, int], lin: Linearised) -> tuple[list[Tensor], list[Tensor]]:
    """The outputs a chunk of targets is linear in, and their gradient seeds (batch row b for
    ``chunk[b]``): a feature's pre-activation is ``reads[layer][pos] . W_enc[:, feature]``; a
    logit direction's value is ``final[-1] . W_U (direction * soft-cap ratio)``. ``directions``
    holds one row per logit node of ``nodes``, in their order."""
    logit_rank = {i: r for r, i in enumerate(i for i, node in enumerate(nodes) if node.kind == "logit")}
    by_layer: dict[int, list[int]] = {}
    for b, row in enumerate(chunk):
        node = nodes[row]
        by_layer.setdefault(node.layer if node.kind == "feature" else rm.n_layers, []).append(b)
    outputs, seeds = [], []
    for layer, batch_rows in by_layer.items():
        rows = [chunk[b] for b in batch_rows]
        b_idx = torch.tensor(batch_rows)
        if layer < rm.n_layers:
            output = lin.reads[layer]
            w_enc = rm.transcoders[layer].W_enc
            seed = output.new_zeros(len(chunk), *output.shape)
            pos = torch.tensor([nodes[r].pos for r in rows])
            feat = torch.tensor([nodes[r].index for r in rows], device=w_enc.device)
            seed[b_idx, 0, pos] = w_enc[:, feat].T
        else:
            output = lin.final
            w_u = rm.model.W_U
            direction = directions[[logit_rank[r] for r in rows]].to(w_u)
            if state.logit_scale is not None:
                direction = direction * state.logit_scale[-1]
            seed = output.new_zeros(len(chunk), *output.shape)
            seed[b_idx, 0, -1] = direction @ w_u.T
        outputs.append(output)
        seeds.append(seed)
    return outputs, seeds


class _Prefixes:
    """The frozen model's graph on prefixes of the prompt, built once per prefix length.

    A chunk of targets whose last position is p reads nothing after p, so its backward pass
    runs on the first p + 1 tokens only, rounded up to a multiple of ``step`` (at least 8
    tokens, at most eight lengths) so that few graphs are built: about half the work of the
    full prompt, on average.
    """

    def __init__(self, rm: ReplacementModel, state: CleanState, n_lengths: int = 8, min_step: int = 8) -> None:
        self.rm, self.state = rm, state
        self.n_pos = len(state.tokens)
        self.step = max(min_step, -(-self.n_pos // n_lengths))
        self.graphs: dict[int, Linearised] = {}

    def graph(self, last: int) -> Linearised:
        """The graph of the shortest cached prefix that contains position ``last``."""
        n = min(self.n_pos, -(-(last + 1) // self.step) * self.step)
        if n not in self.graphs:
            with torch.no_grad():
                self.graphs[n] = self.rm.linearised(self.state.prefix(n))
        return self.graphs[n]


def edge_matrix(
    rm: ReplacementModel,
    state: CleanState,
    nodes: Sequence[Node],
    targets: Sequence[LogitTarget],
    batch_size: int,
    progress: bool = False,
    threads: int | None = None,
) -> Float[Tensor, "n_nodes n_nodes"]:
    """Adjacency (rows = targets, columns = sources) by batched backward passes.

    One frozen forward pass on ``batch_size`` copies of the prompt; then, per target layer,
    one backward pass per ``batch_size`` targets, seeded at the residual stream the targets
    read (each batch row a different target), which yields their gradient at every earlier
    MLP write and at the embeddings; every source reads its edge from there (see
    :class:`_Sources`). ``progress`` shows a bar over the backward passes; ``threads`` is
    torch's thread count for them (None: chosen by measuring, see :mod:`interp.circuits.threads`).
    """
    n = len(nodes)
    adjacency = torch.zeros(n, n)
    rows = [i for i, node in enumerate(nodes) if node.kind in ("feature", "logit")]
    if not rows:
        return adjacency
    groups: dict[int, list[int]] = {}
    for row in rows:
        node = nodes[row]
        groups.setdefault(node.layer if node.kind == "feature" else rm.n_layers, []).append(row)
    batch = min(batch_size, max(len(g) for g in groups.values()))
    sources = _Sources(rm, state, nodes)
    directions = torch.stack([t.direction for t in targets])
    logit_rank = _logit_rank(nodes)
    from tqdm.auto import tqdm

    passes = sum(-(-len(group) // batch) for group in groups.values())
    bar = tqdm(total=passes, desc="attribution", unit="pass", disable=not progress, leave=False)
    prefixes = _Prefixes(rm, state)
    with choose_threads(threads, passes) as chooser:
        for target_layer, group in sorted(groups.items()):
            src_layers = [layer for layer in range(rm.n_layers) if layer < target_layer]
            for start in range(0, len(group), batch):
                chunk = group[start : start + batch]
                lin = prefixes.graph(max(nodes[row].pos for row in chunk))
                inputs = [lin.embed] + [lin.writes[layer] for layer in src_layers]
                outputs, seeds = _seeds(rm, state, nodes, chunk, directions, logit_rank, lin)
                with chooser.run(len(chunk) * lin.embed.shape[1] * (target_layer + 1)):
                    grads = lin.grad(outputs, seeds, inputs)
                _fill_rows(adjacency, sources, chunk, [-1, *src_layers], grads)
                bar.update(1)
    bar.close()
    return adjacency


def _fill_rows(adjacency: Tensor, sources: _Sources, chunk: Sequence[int], layers: Sequence[int],
               grads: Sequence[Tensor]) -> None:
    """Write the rows of ``chunk`` (targets) from their gradients at each of ``layers``' writes."""
    with torch.no_grad():
        contiguous = list(chunk) == list(range(chunk[0], chunk[0] + len(chunk)))
        out = adjacency[chunk[0] : chunk[0] + len(chunk)] if contiguous else adjacency.new_zeros(len(chunk), adjacency.shape[1])
        for layer, g in zip(layers, grads):
            sources.fill(out, layer, g)
        if not contiguous:
            adjacency[list(chunk)] = out


def _writes(rm: ReplacementModel, state: CleanState, layer: int, pos: Tensor, feature: Tensor) -> Tensor:
    """[n, d_model]: what layer ``layer``'s sources at ``pos`` add to the residual stream: the
    embedding (layer -1), the error term (``feature`` -1) or a feature's decoder row times its
    activation."""
    if layer < 0:
        return state.embed[pos]
    out = state.errors[layer][pos].clone()
    is_feature = feature >= 0
    if bool(is_feature.any()):
        p, f = pos[is_feature], feature[is_feature]
        w_dec = rm.transcoders[layer].W_dec
        out[is_feature.to(out.device)] = state.acts[layer][p, f][:, None] * w_dec[f.to(w_dec.device)]
    return out


def _write_vector(rm: ReplacementModel, state: CleanState, node: Node) -> Tensor:
    """What a source node adds to the residual stream at its position."""
    if node.kind == "feature":
        return node.activation * rm.transcoders[node.layer].W_dec[node.index]
    if node.kind == "error":
        return state.errors[node.layer][node.pos]
    return state.embed[node.pos]


def _ln_input(rm: ReplacementModel, state: CleanState, layer: int, pos: Tensor, vec: Tensor) -> Tensor:
    """Block ``layer``'s frozen ln1 applied to residual writes ``vec`` [n, d_model] at positions
    ``pos`` [n] (without its bias, a constant): what each write adds to the attention's input."""
    model = rm.model
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
    residual stream and everything downstream of the head is in the gradient. Paths whose
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
        writes = torch.stack([_write_vector(rm, state, graph.nodes[s]) for s in sources])
        values = {
            layer: torch.einsum("sd,hde->she", _ln_input(rm, state, layer, src_pos, writes), model.blocks[layer].attn.W_V)
            for layer in z_layers
        }
    paths: list[HeadPath] = []
    with choose_threads(threads, -(-len(targets) // batch)) as chooser:
        for start in range(0, len(targets), batch):
            chunk = targets[start : start + batch]
            outputs, seeds = _seeds(rm, state, graph.nodes, chunk, graph.logit_directions, logit_rank, lin)
            with chooser.run(len(chunk)):
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
