"""The frozen replacement model the attribution tests intervene on, built from the model's own
hook points and the transcoders' own methods, independently of :mod:`interp.circuits`.

Every normalisation scale on the residual stream (every ``*.hook_scale`` outside attention and
MLP, post-sublayer norms included) and every attention pattern are held at their clean values,
transcoder activations and error terms are fixed inputs, and a soft-capped logit keeps its clean
ratio ``capped / raw`` (see docs/circuits.md). A scale the engine forgot to freeze, or a
soft-cap it attributed through, shows up as an edge that differs from the intervention.

Per-layer transcoders (``{layer: Transcoder}``) read the MLP input and write their own layer's
MLP output. A cross-layer transcoder reads its own read hook at each layer and its output at
layer ``l'`` is :meth:`CrossLayerTranscoder.decode` of every layer's activations (the dense
decode over all (source, output) pairs, not the per-output path the engine uses), plus its skip.
"""

from __future__ import annotations

import torch

from interp.hooks import hook_name, mlp_input
from interp.transcoders.clt import CrossLayerTranscoder


class Frozen:
    """The frozen replacement model of ``model`` with folded ``transcoders`` on ``tokens``."""

    def __init__(self, model, transcoders, tokens):
        self.model = model
        self.tcs = transcoders  # folded, as the engine uses them
        self.clt = transcoders if isinstance(transcoders, CrossLayerTranscoder) else None
        self.layers = list(self.clt.layers) if self.clt is not None else sorted(transcoders)
        self.tokens = tokens
        # every norm on the residual stream; query/key norms only shape the (frozen) pattern
        names = [n for n in model.hook_dict if n.endswith("attn.hook_pattern")
                 or (n.endswith(".hook_scale") and ".attn." not in n and ".mlp." not in n)]
        outs = [hook_name("mlp_out", layer) for layer in range(model.cfg.n_layers)]
        reads = [self.read_hook(layer) for layer in self.layers]
        with torch.no_grad():
            logits, cache = model.run_with_cache(
                tokens[None], names_filter=names + outs + reads + ["blocks.0.hook_resid_pre", "unembed.hook_out"]
            )
        self.frozen = {n: cache[n] for n in names}
        raw = cache["unembed.hook_out"][0]
        self.logit_scale = torch.where(raw.abs() > 1e-12, logits[0] / raw, torch.ones_like(raw))
        self.logits = logits[0]
        self.embed = cache["blocks.0.hook_resid_pre"][0]
        x = {layer: cache[self.read_hook(layer)][0] for layer in self.layers}
        self.acts = {layer: self.encode(layer, x[layer]) for layer in self.layers}
        self.errors = {}
        for layer in range(model.cfg.n_layers):
            out = cache[hook_name("mlp_out", layer)][0]
            if layer in self.layers:
                out = out - self.decode(layer, self.acts) - self.skip(layer, x[layer])
            self.errors[layer] = out

    # -- the transcoders, each kind through its own methods ------------------------------

    def read_hook(self, layer):
        return self.clt.hook_names_in[self.clt.index(layer)] if self.clt is not None else mlp_input(self.model, layer)

    def encode(self, layer, x):
        return self.clt.encode_layer(x, layer) if self.clt is not None else self.tcs[layer].encode(x)

    def pre_activation(self, layer, x):
        return self.clt.layer_pre_activation(x, layer) if self.clt is not None else self.tcs[layer].pre_activation(x)

    def decode(self, layer, acts):
        if self.clt is None:
            return self.tcs[layer].decode(acts[layer])
        return self.clt.decode(torch.stack([acts[source] for source in self.layers], -2))[..., self.clt.index(layer), :]

    def skip(self, layer, x):
        return self.clt.skip_layer(x, layer) if self.clt is not None else self.tcs[layer].skip(x)

    def skip_layers(self):
        """The layers with a skip path (a path from the read hook to the MLP output)."""
        if self.clt is not None:
            return list(self.layers) if self.clt.cfg.skip_connection else []
        return [layer for layer, tc in self.tcs.items() if tc.has_skip]

    def write_before(self, node, layer):
        """What source ``node`` has written to the residual stream at its position by the time
        block ``layer``'s attention reads it."""
        if node.kind == "embedding":
            return self.embed[node.pos]
        if node.kind == "error":
            return self.errors[node.layer][node.pos] if node.layer < layer else torch.zeros_like(self.embed[0])
        act = self.acts[node.layer][node.pos, node.index]
        if self.clt is None:
            return act * self.tcs[node.layer].W_dec[node.index] if node.layer < layer else torch.zeros_like(self.embed[0])
        rows = self.clt.decoder_vectors(node.layer, torch.tensor([node.index]))[0]
        outs = self.clt.output_layers(node.layer)
        return act * sum((row for out, row in zip(outs, rows) if out < layer), torch.zeros_like(self.embed[0]))

    # -- interventions -----------------------------------------------------------------

    @torch.no_grad()
    def run(self, embed, acts, errors, extra_hooks=()):
        """Batched: ``embed`` [n, pos, d], ``acts[L]`` [n, pos, d_sae], ``errors[L]`` [n, pos, d].
        Returns (logits [n, pos, vocab] with the frozen soft-cap ratio, {L: pre-activations})."""
        n = embed.shape[0]
        live, pre, raw = {}, {}, {}

        def freeze(value):
            return lambda x, hook: value.expand(n, *value.shape[1:])

        def read(layer):
            def hook(x, hook):
                live[layer] = x
                pre[layer] = self.pre_activation(layer, x)

            return hook

        def write(layer):
            def hook(out, hook):
                if layer not in self.layers:
                    return errors[layer]
                return self.decode(layer, acts) + self.skip(layer, live[layer]) + errors[layer]

            return hook

        hooks = [(name, freeze(v)) for name, v in self.frozen.items()]
        hooks += [("blocks.0.hook_resid_pre", lambda x, hook: embed), ("unembed.hook_out", lambda x, hook: raw.setdefault(0, x))]
        hooks += [(self.read_hook(layer), read(layer)) for layer in self.layers]
        hooks += [(hook_name("mlp_out", layer), write(layer)) for layer in range(self.model.cfg.n_layers)]
        with self.model.hooks(fwd_hooks=hooks + list(extra_hooks)):
            self.model(self.tokens[None].expand(n, -1))
        return raw[0] * self.logit_scale, pre

    def clean_inputs(self, n):
        def rep(x):
            return x[None].repeat(n, *([1] * x.ndim))

        return rep(self.embed), {k: rep(v) for k, v in self.acts.items()}, {k: rep(v) for k, v in self.errors.items()}

    def target_values(self, graph, logits, pre):
        """[n, n_nodes]: each feature node's pre-activation and each logit target's value."""
        out = torch.zeros(logits.shape[0], len(graph.nodes))
        for i, node in enumerate(graph.nodes):
            if node.kind == "feature":
                out[:, i] = pre[node.layer][:, node.pos, node.index]
        logit_rows = [i for i, node in enumerate(graph.nodes) if node.kind == "logit"]
        out[:, logit_rows] = logits[:, -1] @ graph.logit_directions.T
        return out


def edge_errors(graph, frozen, sources):
    """(max |edge - intervention| over ``sources``' columns, largest |edge| of the graph)."""
    n = len(sources)
    embed, acts, errors = frozen.clean_inputs(n + 1)
    for row, s in enumerate(sources, start=1):  # row 0 stays clean
        node = graph.nodes[s]
        if node.kind == "feature":
            acts[node.layer][row, node.pos, node.index] = 0
        elif node.kind == "error":
            errors[node.layer][row, node.pos] = 0
        else:
            embed[row, node.pos] = 0
    values = frozen.target_values(graph, *frozen.run(embed, acts, errors))
    measured = (values[0] - values[1:]).T  # [n_nodes, n_sources]: change of each target
    rows = [i for i, node in enumerate(graph.nodes) if node.kind in ("feature", "logit")]
    predicted = graph.adjacency[:, sources]
    return float((predicted - measured)[rows].abs().max()), float(graph.adjacency.abs().max())


def sample_sources(graph, n_features=48, seed=0):
    """Every embedding and error node, the features with the largest out-edges, and a random sample."""
    kinds = [node.kind for node in graph.nodes]
    fixed = [i for i, k in enumerate(kinds) if k in ("embedding", "error")]
    features = torch.tensor([i for i, k in enumerate(kinds) if k == "feature"])
    strongest = features[graph.adjacency[:, features].abs().amax(0).argsort(descending=True)[: n_features // 2]]
    g = torch.Generator().manual_seed(seed)
    rest = features[torch.randperm(len(features), generator=g)[: n_features // 2]]
    return sorted(set(fixed) | set(strongest.tolist()) | set(rest.tolist()))
