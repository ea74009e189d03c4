"""The edge matrix of an attribution graph, in the residual-stream formulation.

Every target is linear in one output of the frozen model's graph
(:meth:`~interp.circuits.replacement.ReplacementModel.linearised`): a feature's
pre-activation in its layer's read hook (the MLP input, or a CLT's read hook), a logit
direction in the final residual stream. A backward pass seeded there (vmapped over a batch of
targets) gives the targets' gradient at every MLP write and at the embeddings; every source
reads its edge from the gradient at its own writes (:class:`_Sources`; a cross-layer
transcoder's feature writes to several layers and sums over them). Targets go layer by layer, each batch on the shortest prefix
of the prompt that holds it (:class:`_Prefixes`), with the thread count of
:mod:`interp.circuits.threads`. :func:`interp.circuits.attribution.attribute` calls
:func:`edge_matrix`; :func:`~interp.circuits.attribution.head_paths` reuses the seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from interp.circuits.graph import Node
from interp.circuits.replacement import CleanState, Linearised, ReplacementModel
from interp.circuits.threads import choose_threads


class _Sources:
    """Every source node's write, grouped as the backward pass delivers their gradients.

    A source adds its write to the residual stream through the MLP output of each layer it
    writes to (the embeddings through ``blocks.0.hook_resid_pre``), so its edge to a target is
    the sum, over those layers L, of ``write[L] . d target / d mlp_out[L][pos]``: one layer for
    an error term or a per-layer transcoder's feature, its own and every later layer for a
    cross-layer transcoder's feature. Sources are read sparsely: per written layer, the error
    term and the active features' writes ``activation x decoder row`` at each position are
    packed into a [pos, slots, d_model] block, which reads a batch of targets' gradients with
    one batched matmul over positions.
    """

    def __init__(self, rm: ReplacementModel, state: CleanState, nodes: Sequence[Node]) -> None:
        n_pos = len(state.tokens)
        d = rm.dictionary
        # per written layer (-1: embeddings), parts of (positions, columns, writes [n, d_model])
        parts: dict[int, list[tuple[Tensor, Tensor, Tensor]]] = {}
        by_kind: dict[tuple[str, int], list[int]] = {}
        for i, node in enumerate(nodes):
            if node.kind in ("feature", "error", "embedding"):
                by_kind.setdefault((node.kind, node.layer), []).append(i)
        for (kind, layer), columns in by_kind.items():
            pos = torch.tensor([nodes[i].pos for i in columns])
            if kind == "embedding":
                parts.setdefault(-1, []).append((pos, torch.tensor(columns), state.embed[pos.to(state.embed.device)]))
            elif kind == "error":
                parts.setdefault(layer, []).append((pos, torch.tensor(columns), state.errors[layer][pos.to(state.embed.device)]))
            else:
                feat = torch.tensor([nodes[i].index for i in columns])
                rows = d.decoder_rows(layer, feat)  # [n, n_out, d_model]
                values = state.acts[layer][pos.to(rows.device), feat.to(rows.device)]
                for j, out in enumerate(d.output_layers(layer)):
                    parts.setdefault(out, []).append((pos, torch.tensor(columns), values[:, None] * rows[:, j]))
        self.blocks: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        """Per written layer: (packed writes [pos, slots, d_model], valid [pos, slots], columns of
        the valid slots in (pos, slot) order, number of valid slots before each position [pos + 1])."""
        for layer, chunks in parts.items():
            pos, cols, writes = (torch.cat(list(x)) for x in zip(*chunks))
            order = torch.argsort(pos, stable=True)
            pos, cols, writes = pos[order], cols[order], writes[order.to(writes.device)]
            counts = torch.bincount(pos, minlength=n_pos)
            before = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
            slot = torch.arange(len(pos)) - before[pos]
            packed = writes.new_zeros(n_pos, int(counts.max()), writes.shape[1])
            packed[pos.to(packed.device), slot.to(packed.device)] = writes
            valid = torch.zeros(n_pos, packed.shape[1], dtype=torch.bool, device=packed.device)
            valid[pos.to(packed.device), slot.to(packed.device)] = True
            self.blocks[layer] = (packed, valid, cols, before)

    def fill(self, out: Tensor, layer: int, grad: Tensor) -> None:
        """Add the edges through layer ``layer``'s MLP write (-1: embeddings) into ``out`` ([k,
        n_nodes], one row per target), given the targets' gradient [k, n, d_model] at that
        write at the first n positions (the targets read nothing later)."""
        if layer not in self.blocks:
            return
        packed, valid, cols, before = self.blocks[layer]
        n = grad.shape[1]
        # [n, slots, d] @ [n, d, k] -> [n, slots, k]: each position's sources read its gradient
        values = torch.bmm(packed[:n], grad.permute(1, 2, 0))[valid[:n]]
        out.index_add_(1, cols[: int(before[n])].to(out.device), values.T.to(out))


def _logit_rank(nodes: Sequence[Node]) -> dict[int, int]:
    """Each logit node's index among the logit nodes (its row of the logit directions)."""
    return {i: r for r, i in enumerate(i for i, node in enumerate(nodes) if node.kind == "logit")}


def _seeds(rm: ReplacementModel, state: CleanState, nodes: Sequence[Node], chunk: Sequence[int],
           directions: Tensor, logit_rank: dict[int, int], lin: Linearised) -> tuple[list[Tensor], list[Tensor]]:
    """The outputs a chunk of targets is linear in, and their gradient seeds (batch row b for
    ``chunk[b]``): a feature's pre-activation is ``reads[layer][pos] . W_enc[:, feature]``
    (:meth:`~interp.circuits.dictionary.Dictionary.encoder_rows`); a
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
            seed = output.new_zeros(len(chunk), *output.shape)
            pos = torch.tensor([nodes[r].pos for r in rows])
            feat = torch.tensor([nodes[r].index for r in rows])
            seed[b_idx, 0, pos] = rm.dictionary.encoder_rows(layer, feat).to(seed)
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
    targets: Sequence,
    batch_size: int,
    progress: bool = False,
    threads: int | None = None,
) -> Float[Tensor, "n_nodes n_nodes"]:
    """Adjacency (rows = targets, columns = sources) by batched backward passes.

    ``targets`` are the :class:`~interp.circuits.attribution.LogitTarget` of the logit nodes,
    in their order. Per target layer, one backward pass per ``batch_size`` targets (vmapped
    over them) on the frozen graph of the shortest prefix that holds them, seeded where the
    targets read the residual stream, yields their gradient at every earlier MLP write and
    at the embeddings; every source reads its edge from there (see :class:`_Sources`).
    ``progress`` shows a bar over the backward passes; ``threads`` is torch's thread count
    for them (None: chosen by measuring, see :mod:`interp.circuits.threads`).
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
    with choose_threads(threads) as chooser:
        chooser.expect(passes)
        for target_layer, group in sorted(groups.items()):
            src_layers = [layer for layer in range(rm.n_layers) if layer < target_layer]
            for start in range(0, len(group), batch):
                chunk = group[start : start + batch]
                lin = prefixes.graph(max(nodes[row].pos for row in chunk))
                inputs = [lin.embed] + [lin.writes[layer] for layer in src_layers]
                outputs, seeds = _seeds(rm, state, nodes, chunk, directions, logit_rank, lin)
                with chooser.run(float(len(chunk) * lin.embed.shape[1] * (target_layer + 1))):
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
