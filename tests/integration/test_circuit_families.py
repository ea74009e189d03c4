"""Attribution on every model family: the replacement model is exact, every edge equals the
frozen-model intervention, and head paths carry what they claim.

The frozen model the interventions run on is built here, independently of
:mod:`interp.circuits.replacement`: every normalisation scale on the residual stream (every
``*.hook_scale`` outside attention and MLP, post-sublayer norms included) and every attention pattern are held at their
clean values, transcoder activations and error terms are fixed, and a soft-capped logit keeps
its clean ratio ``capped / raw`` (see docs/circuits.md). A scale the engine forgot to freeze,
or a soft-cap it attributed through, shows up as an edge that differs from the intervention.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support.families import PROMPTS, family_params

from interp.circuits.attribution import AttributionConfig, attribute, head_paths, token_target
from interp.circuits.replacement import ReplacementModel
from interp.hooks import hook_name, mlp_input
from interp.transcoders import Transcoder, registry

TOLERANCE = 1e-4
"""Largest allowed |edge - intervention|, as a fraction of the largest edge of the graph."""


def random_transcoders(model, seed: int = 0) -> dict[int, Transcoder]:
    """Random sparse transcoders: TopK at layer 0, ReLU with a skip path at layer 1, then ReLU
    and TopK alternating; the last layer of a model deeper than 2 has none (its whole MLP
    output is an error node)."""
    d = model.cfg.d_model
    d_sae = 4 * d
    g = torch.Generator().manual_seed(seed)
    n_layers = model.cfg.n_layers
    layers = range(n_layers if n_layers <= 2 else n_layers - 1)
    tcs = {}
    for layer in layers:
        w_enc = torch.randn(d, d_sae, generator=g) / d**0.5
        w_dec = torch.randn(d_sae, d, generator=g) * 0.3 / d**0.5
        b_dec = torch.randn(d, generator=g) * 0.01
        if layer == 1:
            w_skip = torch.randn(d, d, generator=g) * 0.1 / d**0.5
            tcs[layer] = Transcoder.from_weights(w_enc, torch.full((d_sae,), -1.0), w_dec, b_dec, W_skip=w_skip)
        elif layer % 2 == 0:
            topk = registry.get("topk").transcoder
            tcs[layer] = topk.from_weights(w_enc, torch.zeros(d_sae), w_dec, b_dec, k=8)
        else:
            tcs[layer] = Transcoder.from_weights(w_enc, torch.full((d_sae,), -1.0), w_dec, b_dec)
    return tcs


def prompt(model) -> torch.Tensor:
    """Twelve tokens, longer than every local attention window of the test families. No BOS:
    the test tokenizer's BOS is its padding token, whose embedding is zero in the families
    that set ``pad_token_id``, and an RMSNorm of a zero vector divides by sqrt(eps) ~ 1e-3 at
    every norm, so edges from that position would dwarf all others by orders of magnitude."""
    tokens = model.to_tokens(PROMPTS[1], prepend_bos=False)[0][:12]
    assert len(tokens) == 12
    return tokens


class Frozen:
    """The frozen replacement model, built from the model's own hook points (not the engine's)."""

    def __init__(self, model, transcoders, tokens):
        self.model = model
        self.tcs = transcoders  # folded, as the engine uses them
        self.tokens = tokens
        # every norm on the residual stream; query/key norms only shape the (frozen) pattern
        names = [n for n in model.hook_dict if n.endswith("attn.hook_pattern")
                 or (n.endswith(".hook_scale") and ".attn." not in n and ".mlp." not in n)]
        layers = range(model.cfg.n_layers)
        extra = [name for layer in layers for name in (mlp_input(model, layer), hook_name("mlp_out", layer))]
        with torch.no_grad():
            logits, cache = model.run_with_cache(
                tokens[None], names_filter=names + extra + ["blocks.0.hook_resid_pre", "unembed.hook_out"]
            )
        self.frozen = {n: cache[n] for n in names}
        raw = cache["unembed.hook_out"][0]
        self.logit_scale = torch.where(raw.abs() > 1e-12, logits[0] / raw, torch.ones_like(raw))
        self.logits = logits[0]
        self.embed = cache["blocks.0.hook_resid_pre"][0]
        self.acts, self.errors = {}, {}
        for layer in layers:
            out = cache[hook_name("mlp_out", layer)][0]
            if layer in self.tcs:
                tc, x = self.tcs[layer], cache[mlp_input(model, layer)][0]
                self.acts[layer] = tc.encode(x)
                out = out - tc.decode(self.acts[layer]) - tc.skip(x)
            self.errors[layer] = out

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
                if layer in self.tcs:
                    pre[layer] = self.tcs[layer].pre_activation(x)

            return hook

        def write(layer):
            def hook(out, hook):
                if layer not in self.tcs:
                    return errors[layer]
                tc = self.tcs[layer]
                return tc.decode(acts[layer]) + tc.skip(live[layer]) + errors[layer]

            return hook

        hooks = [(name, freeze(v)) for name, v in self.frozen.items()]
        hooks += [("blocks.0.hook_resid_pre", lambda x, hook: embed), ("unembed.hook_out", lambda x, hook: raw.setdefault(0, x))]
        for layer in range(self.model.cfg.n_layers):
            hooks += [(mlp_input(self.model, layer), read(layer)), (hook_name("mlp_out", layer), write(layer))]
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


@pytest.fixture(scope="module")
def traced(request, family_models):
    """Per family: (model, folded transcoders, tokens, full graph, Frozen)."""
    cache = {}

    def get(family):
        if family not in cache:
            model = family_models[family]
            tcs = ReplacementModel(model, random_transcoders(model)).transcoders
            tokens = prompt(model)
            with torch.no_grad():
                top = int(model(tokens[None])[0, -1].argmax())
            graph = attribute(model, tcs, tokens, [token_target(model, top)], AttributionConfig(progress=False))
            cache[family] = (model, tcs, tokens, graph, Frozen(model, tcs, tokens))
        return cache[family]

    return get


@pytest.mark.parametrize("family", family_params(extra=True))
def test_replacement_model_is_exact(family, traced):
    model, tcs, tokens, graph, frozen = traced(family)
    rm = ReplacementModel(model, tcs)
    with torch.no_grad():
        assert torch.equal(rm(tokens[None]), model(tokens[None]))
    state = rm.clean_state(tokens)
    logits, _ = rm.run_frozen(state)
    scale = float(state.logits.abs().max())
    torch.testing.assert_close(logits, state.logits, atol=1e-5 * scale, rtol=0)
    # the independent frozen model reproduces the clean run too (so it is a freezing of this model)
    logits, _ = frozen.run(*frozen.clean_inputs(1))
    torch.testing.assert_close(logits[0], frozen.logits, atol=1e-5 * scale, rtol=0)
    # a logit node's value is the model's own (soft-capped) logit
    logit = next(n for n in graph.nodes if n.kind == "logit")
    assert logit.activation == pytest.approx(float(frozen.logits[-1] @ graph.logit_directions[0]), abs=1e-5 * scale)


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


@pytest.mark.parametrize("family", family_params(extra=True))
def test_every_edge_equals_the_frozen_intervention(family, traced):
    _, tcs, _, graph, frozen = traced(family)
    n_features = sum(node.kind == "feature" for node in graph.nodes)
    assert n_features >= 20 * len(tcs)  # features active in every transcoder layer
    sources = sample_sources(graph)
    worst, largest = edge_errors(graph, frozen, sources)
    assert largest > 0
    assert worst <= TOLERANCE * largest, f"{family}: max |edge - intervention| / max |edge| = {worst / largest:.2e}"
    # the check has teeth: many large edges, in every layer, among the sources checked
    big = graph.adjacency[:, sources].abs() > 1e-2 * largest
    assert int(big.sum()) > 50


def _ln1_linear(model, layer, pos, vec, frozen):
    """Block ``layer``'s ln1, its scale frozen at ``pos``, applied to a residual write (bias removed),
    by calling the model's own module. Post-norm blocks (OLMo) read the residual stream itself."""
    from interp.hooks import input_norm

    if input_norm(model, layer, "attn") is None:
        return vec
    scale = frozen.frozen[f"blocks.{layer}.ln1.hook_scale"][:, pos : pos + 1]
    ln1 = model.blocks[layer].ln1
    with torch.no_grad(), model.hooks(fwd_hooks=[(f"blocks.{layer}.ln1.hook_scale", lambda x, hook: scale)]):
        return (ln1(vec[None, None]) - ln1(torch.zeros_like(vec)[None, None]))[0, 0]


def _edge_sample(graph, skips, n=40):
    """The graph with only its ``n`` largest edges kept, and the ``n`` largest edges between
    positions with no skip path between source and target (the ones whose paths sum to them)."""
    nodes = graph.nodes
    pos = torch.tensor([node.pos for node in nodes])
    layer = torch.tensor([node.layer for node in nodes])
    between = torch.zeros_like(graph.adjacency, dtype=torch.bool)
    for skip in skips:
        between |= (layer[None, :] < skip) & (skip < layer[:, None])
    weight = graph.adjacency.abs()
    keep = torch.zeros_like(between)
    for candidates in (weight, weight * ((pos[:, None] != pos[None, :]) & ~between)):
        keep.view(-1)[candidates.flatten().topk(n).indices] = True
    return dataclasses.replace(graph, adjacency=graph.adjacency * keep)


@pytest.mark.parametrize("family", family_params(extra=True))
def test_head_paths_carry_what_they_claim(family, traced):
    """Each path equals the change of its target when the source's write is removed from that
    head's value at that query position only. Between positions, where no MLP skip path lies
    between source and target, the paths (all of them kept) sum to the edge: every such path
    starts with a head reading the source from the residual stream."""
    model, tcs, tokens, full, frozen = traced(family)
    skips = [layer for layer, tc in tcs.items() if tc.has_skip]
    graph = _edge_sample(full, skips)
    rm = ReplacementModel(model, tcs)
    paths = head_paths(rm, rm.clean_state(tokens), graph, min_fraction=0.0, same_position=True)
    largest = float(full.adjacency.abs().max())
    assert paths and all(p.weight != 0 for p in paths)
    # (1) sums
    sums: dict[tuple[int, int], float] = {}
    for p in paths:
        sums[(p.source, p.target)] = sums.get((p.source, p.target), 0.0) + p.weight
    checked = 0
    for t, s in graph.edges():
        src, tgt = graph.nodes[s], graph.nodes[t]
        if src.pos != tgt.pos and not any(src.layer < layer < tgt.layer for layer in skips):
            assert sums.get((s, t), 0.0) == pytest.approx(float(graph.adjacency[t, s]), abs=TOLERANCE * largest)
            checked += 1
    assert checked >= 10
    # (2) each of the strongest paths, by intervening on hook_z at (query, head)
    strongest = sorted(paths, key=lambda p: -abs(p.weight))[:24]
    embed, acts, errors = frozen.clean_inputs(len(strongest) + 1)
    patterns = {layer: frozen.frozen[hook_name("attn_pattern", layer)][0] for layer in range(model.cfg.n_layers)}
    deltas = {}  # layer -> list of (row, query, head, delta z)
    for row, p in enumerate(strongest, start=1):
        src = graph.nodes[p.source]
        if src.kind == "feature":
            write = src.activation * tcs[src.layer].W_dec[src.index]
        elif src.kind == "error":
            write = frozen.errors[src.layer][src.pos]
        else:
            write = frozen.embed[src.pos]
        v = _ln1_linear(model, p.layer, src.pos, write, frozen) @ model.blocks[p.layer].attn.W_V[p.head]
        deltas.setdefault(p.layer, []).append((row, p.query, p.head, patterns[p.layer][p.head, p.query, src.pos] * v))

    def remove(layer):
        def hook(z, hook):
            z = z.clone()
            for row, q, h, dz in deltas[layer]:
                z[row, q, h] -= dz
            return z

        return hook

    hooks = [(hook_name("attn_z", layer), remove(layer)) for layer in deltas]
    values = frozen.target_values(graph, *frozen.run(embed, acts, errors, extra_hooks=hooks))
    for row, p in enumerate(strongest, start=1):
        measured = float(values[0, p.target] - values[row, p.target])
        assert measured == pytest.approx(p.weight, abs=TOLERANCE * largest), (family, p)


@pytest.mark.parametrize("kind", ["attention-only"])
def test_models_without_an_mlp_input_at_ln2_are_refused(kind):
    """Attention-only models are refused in one sentence (post-norm blocks, whose MLP reads the
    residual stream itself, are attributed through hooks.mlp_input: the olmo3 family above)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from interp.errors import TranscoderLoadError

    settings = {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32, "n_ctx": 8, "d_vocab": 20,
                "act_fn": "gelu", "normalization_type": "RMS"}
    if kind == "attention-only":
        settings["attn_only"] = True
    else:
        settings["original_architecture"] = "Olmo2ForCausalLM"
    model = HookedTransformer(HookedTransformerConfig(**settings))
    tc = Transcoder.from_weights(torch.randn(16, 32), torch.zeros(32), torch.randn(32, 16))
    with pytest.raises(TranscoderLoadError, match="attention-only" if kind == "attention-only" else "post-norm"):
        ReplacementModel(model, {0: tc})
