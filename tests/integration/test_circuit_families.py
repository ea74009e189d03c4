"""Attribution on every model family: the replacement model is exact, every edge equals the
frozen-model intervention, and head paths carry what they claim; through per-layer
transcoders on every family, and through a cross-layer transcoder on four (LayerNorm, parallel
blocks, RMSNorm with a gated MLP, Gemma 2's pre- and post-norms with soft-capping).

The frozen model the interventions run on (``tests/support/frozen.py``) is built independently
of :mod:`interp.circuits`: every normalisation scale on the residual stream and every attention
pattern held at their clean values, transcoder activations and error terms fixed, a soft-capped
logit at its clean ratio ``capped / raw`` (see docs/circuits.md). A scale the engine forgot to
freeze, a soft-cap it attributed through, or a CLT write it missed shows up as an edge that
differs from the intervention.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support.families import PROMPTS, family_params
from support.frozen import Frozen, edge_errors, sample_sources

from interp.circuits.attribution import AttributionConfig, attribute, head_paths, token_target
from interp.circuits.replacement import ReplacementModel
from interp.hooks import hook_name, mlp_input
from interp.transcoders import Transcoder, registry
from interp.transcoders.clt import CrossLayerTranscoder

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


def random_clt(model, tokens, seed: int = 0, skip: bool = True) -> CrossLayerTranscoder:
    """A random JumpReLU CLT over every layer, each feature writing to its own layer and every
    later one, its thresholds set so that about a fifth of each layer's features fire on
    ``tokens``. It reads ``resid_mid``, or the normalised MLP input where blocks are parallel
    (no ``resid_mid``) or Gemma-2-style (to cover both read sites). A skip path at every layer when
    ``skip``, but never in parallel blocks (there no edge between positions would then be carried
    by heads alone, and the head-path test would check nothing)."""
    d, L = model.cfg.d_model, model.cfg.n_layers
    d_sae = 4 * d
    g = torch.Generator().manual_seed(seed)
    parallel = bool(getattr(model.cfg, "parallel_attn_mlp", False))
    site = "ln2_normalized" if parallel or model.cfg.original_architecture == "Gemma2ForCausalLM" else "resid_mid"
    w_enc = torch.randn(L, d, d_sae, generator=g) / d**0.5
    decoders = [torch.randn(d_sae, L - i, d, generator=g) * 0.3 / d**0.5 for i in range(L)]
    clt = CrossLayerTranscoder.from_weights(
        w_enc, torch.zeros(L, d_sae), decoders, torch.randn(L, d, generator=g) * 0.01, layers=list(range(L)),
        W_skip=None if parallel or not skip else torch.randn(L, d, d, generator=g) * 0.1 / d**0.5,
        threshold=torch.zeros(L, d_sae), input_site=site,
    )
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens[None], names_filter=lambda n: n in clt.hook_names_in)
        for i, hook in enumerate(clt.hook_names_in):
            clt.threshold[i] = clt.layer_pre_activation(cache[hook][0], i).quantile(0.8).clamp_min(1e-3)
    return clt


CASES = [pytest.param(p.values[0], "per-layer", id=p.id, marks=p.marks) for p in family_params(extra=True)] + [
    pytest.param(family, "clt", id=f"{family}-clt") for family in ("gpt2", "pythia", "llama", "gemma2", "olmo3", "reference")
]
"""(family, kind): per-layer transcoders on every family; a cross-layer transcoder on five
(LayerNorm and RMSNorm, plain and gated MLPs, parallel blocks, Gemma 2's post-sublayer norms and
OLMo 3's post-norm blocks), and on the trained reference model, whose four layers let a feature's later writes enter later heads."""


def prompt(model) -> torch.Tensor:
    """Twelve tokens, longer than every local attention window of the test families. No BOS:
    the test tokenizer's BOS is its padding token, whose embedding is zero in the families
    that set ``pad_token_id``, and an RMSNorm of a zero vector divides by sqrt(eps) ~ 1e-3 at
    every norm, so edges from that position would dwarf all others by orders of magnitude."""
    tokens = model.to_tokens(PROMPTS[1], prepend_bos=False)[0][:12]
    assert len(tokens) == 12
    return tokens


@pytest.fixture(scope="module")
def traced(request, family_models):
    """Per (family, kind): (model, folded transcoders, tokens, full graph, Frozen)."""
    cache = {}

    def get(family, kind):
        if (family, kind) not in cache:
            if family == "reference":
                from interp.models import load_model

                model = load_model("reference")
                tokens = model.to_tokens("The war lasted from the year 1745 to the year 17")[0]
            else:
                model = family_models[family]
                tokens = prompt(model)
            # no skip path on the reference model: its head paths from a feature to the logits
            # then sum to the edge, and they hold the feature's writes to layers 1-2 as well
            given = random_clt(model, tokens, skip=family != "reference") if kind == "clt" else random_transcoders(model)
            tcs = ReplacementModel(model, given).transcoders
            with torch.no_grad():
                top = int(model(tokens[None])[0, -1].argmax())
            graph = attribute(model, tcs, tokens, [token_target(model, top)], AttributionConfig(progress=False))
            cache[family, kind] = (model, tcs, tokens, graph, Frozen(model, tcs, tokens))
        return cache[family, kind]

    return get


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_replacement_model_is_exact(family, kind, traced):
    model, tcs, tokens, graph, frozen = traced(family, kind)
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


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_every_edge_equals_the_frozen_intervention(family, kind, traced):
    _, tcs, _, graph, frozen = traced(family, kind)
    for layer in frozen.layers:  # features active in every transcoder layer
        assert sum(node.kind == "feature" and node.layer == layer for node in graph.nodes) >= 20
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
    """The graph with only its ``n`` largest edges kept, the ``n`` largest edges between
    positions with no skip path between source and target (the ones whose paths sum to them),
    and the ``n`` largest of those from a feature to a target two or more layers later (a CLT
    feature's writes to later layers enter heads there)."""
    nodes = graph.nodes
    pos = torch.tensor([node.pos for node in nodes])
    layer = torch.tensor([node.layer for node in nodes])
    feature = torch.tensor([node.kind == "feature" for node in nodes])
    between = torch.zeros_like(graph.adjacency, dtype=torch.bool)
    for skip in skips:
        between |= (layer[None, :] < skip) & (skip < layer[:, None])
    weight = graph.adjacency.abs()
    keep = torch.zeros_like(between)
    summed = (pos[:, None] != pos[None, :]) & ~between
    far = summed & feature[None, :] & (layer[:, None] >= layer[None, :] + 2)
    for candidates in (weight, weight * summed, weight * far):
        keep.view(-1)[candidates.flatten().topk(n).indices] = True
    return dataclasses.replace(graph, adjacency=graph.adjacency * keep)


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_head_paths_carry_what_they_claim(family, kind, traced):
    """Each path equals the change of its target when the source's write is removed from that
    head's value at that query position only. Between positions, where no MLP skip path lies
    between source and target, the paths (all of them kept) sum to the edge: every such path
    starts with a head reading the source from the residual stream."""
    model, tcs, tokens, full, frozen = traced(family, kind)
    skips = frozen.skip_layers()
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
        write = frozen.write_before(src, p.layer)
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
