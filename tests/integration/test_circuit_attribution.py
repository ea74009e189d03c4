"""Attribution on planted and random models: recovery, exactness, and agreement with
actual interventions (the test style of circuit-tracer's test_attributions_*)."""

from __future__ import annotations

import pytest
import torch

from interp.circuits.attribution import AttributionConfig, attribute, difference_target, token_target
from interp.circuits.planted import A, planted_circuit
from interp.circuits.replacement import ReplacementModel, ablate_features
from interp.circuits.tracing import TraceConfig, trace
from interp.errors import TargetError, TranscoderLoadError
from interp.transcoders import Transcoder



@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine torch's thread pool mostly waits."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope="module")
def planted():
    torch.manual_seed(0)
    return planted_circuit()


@pytest.fixture(scope="module")
def random_setup():
    """A random reference-shaped model (unfolded LayerNorm) with random sparse transcoders:
    ReLU ones, one with a skip connection, and one interp TopK transcoder with non-trivial
    normalisation buffers (exercising the adapter)."""
    from interp.reference.model import architecture, build
    from interp.reference.tokenizer import build_tokenizer
    from interp.transcoders import registry

    torch.manual_seed(1)
    tok = build_tokenizer()
    model = build(architecture(len(tok)), tok, seed=1)
    d, d_sae = model.cfg.d_model, 64
    g = torch.Generator().manual_seed(2)
    tcs = {}
    for layer in range(3):
        tcs[layer] = Transcoder.from_weights(
            torch.randn(d, d_sae, generator=g) / d**0.5,
            torch.full((d_sae,), -1.3),
            torch.randn(d_sae, d, generator=g) * 0.3 / d**0.5,
            torch.randn(d, generator=g) * 0.01,
            W_skip=torch.randn(d, d, generator=g) * 0.02 / d**0.5 if layer == 1 else None,
        )
    arch = registry.get("topk")
    tc = arch.transcoder(arch.config(d_in=d, d_out=d, d_sae=d_sae, k=6), seed=3)
    with torch.no_grad():
        tc.set_normalisation(torch.randn(256, d, generator=g) * 2 + 0.3, torch.randn(256, d, generator=g) * 0.5)
    tcs[3] = tc
    tokens = torch.tensor([tok.bos_token_id, 20, 31, 42, 53, 20, 64])
    return model, tcs, tokens


def test_planted_graph_recovers_the_path_and_nothing_else(planted):
    g = trace(planted.model, planted.transcoders, planted.prompt, target=planted.target_token, cfg=TraceConfig())
    kept = {(n.kind, n.layer, n.pos, n.index) for n in g.nodes if n.kind in ("feature", "error")}
    assert kept == {("feature", 0, 1, 0), ("feature", 1, 4, 0)}
    edges = {(g.node_id(s), g.node_id(t)) for t, s in g.edges()}
    assert edges == {(f"E_{A}_1", "0_0_1"), ("0_0_1", "1_0_4"), ("1_0_4", f"3_{planted.target_token}_4")}
    # the cross-position edge is carried by head 1.0, moving position 1 to position 4
    f0, f1 = g.index_of("feature", 0, 1, 0)[0], g.index_of("feature", 1, 4, 0)[0]
    paths = g.heads_of(f0, f1)
    assert [(p.layer, p.head, p.query) for p in paths] == [(1, 0, 4)]
    assert paths[0].weight == pytest.approx(float(g.adjacency[f1, f0]), rel=1e-4)
    assert all(p.head == 0 for p in g.head_paths)  # the decoy head carries nothing kept
    assert g.scores["replacement"] == pytest.approx(1.0, abs=1e-4)


def test_trace_reads_its_nested_settings(planted, monkeypatch, capfd):
    """The AttributionConfig inside TraceConfig is what attribute() gets; heads=False skips head paths."""
    from interp.circuits import tracing

    seen = []
    real = tracing.attribute
    monkeypatch.setattr(tracing, "attribute", lambda *a, **k: seen.append(a[4]) or real(*a, **k))
    acfg = AttributionConfig(batch_size=1, progress=False)
    capfd.readouterr()
    g = trace(planted.model, planted.transcoders, planted.prompt, target=planted.target_token,
              cfg=TraceConfig(attribution=acfg, heads=False))
    assert seen == [acfg] and g.head_paths == [] and len(g.edges()) == 3
    assert capfd.readouterr().err == ""  # progress=False: no bar


def test_an_empty_prompt_is_refused(planted, random_setup):
    model, tcs, _ = random_setup
    # a string prompt gets BOS prepended, so "" would be traced as the BOS token alone
    assert model.to_tokens("").shape == (1, 1)
    with pytest.raises(TargetError, match="the prompt is empty"):
        trace(model, tcs, "")
    for empty in ([], torch.zeros(0, dtype=torch.long)):
        with pytest.raises(TargetError, match="the prompt is empty"):
            trace(planted.model, planted.transcoders, empty, target=planted.target_token)


def test_replacement_model_reproduces_the_original_exactly(planted, random_setup):
    for model, tcs, tokens in ((planted.model, planted.transcoders, planted.prompt), random_setup):
        rm = ReplacementModel(model, tcs)
        with torch.no_grad():
            assert torch.equal(rm(tokens[None]), model(tokens[None]))
        # and its transcoders plus errors rebuild every MLP output
        state = rm.clean_state(tokens)
        logits, _ = rm.run_frozen(state)
        torch.testing.assert_close(logits, state.logits, atol=1e-4, rtol=1e-4)


def _interventions(rm, state, graph):
    """Target changes when each source is removed in the frozen model, as a matrix."""
    base_logits, base_pre = rm.run_frozen(state)
    directions = graph.logit_directions

    def targets(logits, pre):
        out = torch.zeros(len(graph.nodes))
        for i, n in enumerate(graph.nodes):
            if n.kind == "feature":
                out[i] = pre[n.layer][n.pos, n.index]
        logit_rows = [i for i, n in enumerate(graph.nodes) if n.kind == "logit"]
        out[logit_rows] = logits[-1] @ directions.T
        return out

    base = targets(base_logits, base_pre)
    effect = torch.zeros_like(graph.adjacency)
    for s, n in enumerate(graph.nodes):
        if n.kind == "feature":
            acts = state.acts[n.layer].clone()
            acts[n.pos, n.index] = 0
            out = rm.run_frozen(state, acts={n.layer: acts})
        elif n.kind == "error":
            err = state.errors[n.layer].clone()
            err[n.pos] = 0
            out = rm.run_frozen(state, errors={n.layer: err})
        elif n.kind == "embedding":
            emb = state.embed.clone()
            emb[n.pos] = 0
            out = rm.run_frozen(state, embed=emb)
        else:
            continue
        effect[:, s] = base - targets(*out)
    rows = [i for i, n in enumerate(graph.nodes) if n.kind in ("feature", "logit")]
    return effect[rows], graph.adjacency[rows]


def test_every_edge_matches_an_intervention(random_setup):
    model, tcs, tokens = random_setup
    target = token_target(model, 42)
    diff = difference_target(model, [10, 11], [12, 13], "10/11 - 12/13")
    graph = attribute(model, tcs, tokens, [target, diff], AttributionConfig(batch_size=32))
    n_features = sum(n.kind == "feature" for n in graph.nodes)
    assert n_features > 50  # a real test: many active features in every layer
    rm = ReplacementModel(model, tcs)
    measured, predicted = _interventions(rm, rm.clean_state(tokens), graph)
    scale = predicted.abs().max()
    torch.testing.assert_close(predicted, measured, atol=2e-4 * float(scale), rtol=1e-3)
    assert int((predicted.abs() > 1e-3 * scale).sum()) > 500  # many non-trivial edges checked
    # edges respect causality: nothing from a later position or a later layer
    for t, s in graph.edges():
        src, tgt = graph.nodes[s], graph.nodes[t]
        assert src.pos <= tgt.pos and src.layer < tgt.layer


def test_batch_size_does_not_change_edges(random_setup):
    model, tcs, tokens = random_setup
    targets = [token_target(model, 42)]
    a = attribute(model, tcs, tokens[:4], targets, AttributionConfig(batch_size=1)).adjacency
    b = attribute(model, tcs, tokens[:4], targets, AttributionConfig(batch_size=64)).adjacency
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_ablating_the_planted_feature_removes_the_logit(planted):
    tokens = planted.prompt[None]
    with torch.no_grad():
        clean = planted.model(tokens)[0, -1, planted.target_token]
    ablated = ablate_features(planted.model, planted.transcoders, tokens, [(0, 1, 0)])[0, -1, planted.target_token]
    decoy = ablate_features(planted.model, planted.transcoders, tokens, [(0, 0, 2)])[0, -1, planted.target_token]
    assert clean - ablated > 1.0
    assert abs(float(clean - decoy)) < 1e-4


def test_transcoders_that_do_not_fit_are_rejected(planted):
    bad = Transcoder.from_weights(torch.zeros(7, 3), torch.zeros(3), torch.zeros(3, 7))
    with pytest.raises(TranscoderLoadError, match="d_model"):
        ReplacementModel(planted.model, {0: bad})
    with pytest.raises(TranscoderLoadError, match="not a layer"):
        ReplacementModel(planted.model, {5: planted.transcoders[0]})


@pytest.mark.parametrize("kind", ["transcoder", "skip_transcoder"])
def test_saelens_transcoders_run_through_circuits_as_saelens_computes_them(planted, kind):
    """SAELens' own Transcoder and SkipTranscoder objects, given to circuits, write exactly what
    SAELens computes: the replacement model's reconstruction equals ``sae(x)`` (the skip matrix
    keeps SAELens' ``[d_out, d_in]`` orientation; a transposed one differs by far more than 1e-5)."""
    from sae_lens import SkipTranscoder, SkipTranscoderConfig
    from sae_lens import Transcoder as SAELensTranscoder
    from sae_lens import TranscoderConfig

    from interp.hooks import hook_name

    model = planted.model
    d = model.cfg.d_model
    config = SkipTranscoderConfig if kind == "skip_transcoder" else TranscoderConfig
    sae = (SkipTranscoder if kind == "skip_transcoder" else SAELensTranscoder)(config(d_in=d, d_out=d, d_sae=16, apply_b_dec_to_input=False))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    tokens = planted.prompt
    _, cache = model.run_with_cache(tokens[None])
    x = cache[hook_name("ln2_normalized", 0)][0]
    mlp_out = cache[hook_name("mlp_out", 0)][0]
    with torch.no_grad():
        expected = sae(x)
    state = ReplacementModel(model, {0: sae}).clean_state(tokens)
    torch.testing.assert_close(mlp_out - state.errors[0], expected, rtol=1e-5, atol=1e-5)
    if kind == "skip_transcoder":  # the transposed skip matrix would not pass the check above
        with torch.no_grad():
            transposed = (sae.encode(x) @ sae.W_dec + sae.b_dec) + x @ sae.W_skip
        assert (transposed - expected).abs().max() > 1e-3
    graph = trace(model, {0: sae, 1: planted.transcoders[1]}, tokens, target=planted.target_token)
    assert graph.nodes
