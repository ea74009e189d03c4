"""The capability x architecture matrix: every capability, on a tiny model of every family.

Each test is one capability, parametrised over every family of ``tests/support/families.py``
(the core ones: GPT-2, GPT-Neo, Pythia, Llama, Gemma 2, Qwen 2, Mistral, SoLU; and Gemma 1,
GPT-J, OPT, Phi-3, Qwen 3, Bloom), and asserts a ground truth that a wrong answer on one
architecture would break:

============  ===================================================================================
capability    ground truth
============  ===================================================================================
cache         the store, and the streamed rows (fused forward where it applies), equal
              ``run_with_cache`` at every site the model has; a parallel model's missing
              ``resid_mid`` is explained in one sentence
transcoders   what a transcoder reads is the MLP's input and what it writes is what the MLP adds
              to the residual stream; on a copy whose MLP (and output norm) is planted to be
              exactly a ReLU MLP, splicing the transcoder with those weights equals the model and
              evaluation reports FVU 0, CE unchanged and the hand-measured zero-ablation CE;
              training lowers FVU below the initialisation's
neurons       a neuron planted to write a token's unembedding direction decodes to that token
              first, and clamping it high makes the model predict that token; gated MLPs refuse
              ``side="in"`` in one sentence
sparsity      a planted dead neuron is never counted, the gated product (not the linear branch)
              is what is counted, densities equal the hand count, and top-1 thresholding keeps a
              planted dominant neuron (by size, for gated MLPs)
redundancy    a planted no-op block scores 0 and dropping it costs nothing; skipping equals
              zero-ablation for every module; parallel models give NaN and the one-sentence note
codebooks     a codebook whose codes are the activations themselves is the identity at every
              site; a planted code decodes to its token; training lowers the codebook loss
units         on the planted ReLU copy the transcoder, all-neurons and identity codebook are
              exactly faithful, and neurons and transcoder latents are equally specific
============  ===================================================================================

Models are shared per session (``family_models``); a test that sets weights by hand works on
a ``copy.deepcopy``. Token ids are fed directly (random ids of the vocabulary, BOS first).
docs/models.md#capabilities-on-each-architecture says what each capability does on each
architecture.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from support.families import family_params

MATRIX = family_params(extra=True)
"""Every family: 14 x 9 cells, about 70 s on two busy CPU cores."""
CTX = 16
"""Tokens per context: longer than every local-attention window of the families (4 tokens)."""


pytestmark = pytest.mark.usefixtures("one_thread")


def token_ids(model, n: int = 8, vocab: int | None = None, seed: int = 0) -> torch.Tensor:
    """``n`` contexts of :data:`CTX` random token ids below ``vocab`` (default: all), BOS first."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab or model.cfg.d_vocab, (n, CTX), generator=generator)
    tokens[:, 0] = model.tokenizer.bos_token_id
    return tokens


def last(model) -> int:
    return model.cfg.n_layers - 1


def unembedding_directions(model) -> torch.Tensor:
    """``[d_model, d_vocab]``: the residual direction that raises each token's logit most, by hand:
    ``W_U`` with the final norm's weight (unfolded models), centred for a LayerNorm."""
    W = model.W_U.detach()
    if hasattr(model.ln_final, "w"):
        W = model.ln_final.w.detach()[:, None] * W
    if model.cfg.normalization_type in ("LN", "LNPre"):
        W = W - W.mean(0, keepdim=True)
    return W


def plantable_token(model) -> int:
    """A token whose own direction raises its logit more than any other token's (most tokens qualify)."""
    W = unembedding_directions(model)
    scores = W.T @ W  # [token, token]: direction of row token -> logit of column token
    own = scores.diagonal().clone()
    margin = own - scores.fill_diagonal_(-math.inf).max(dim=1).values
    return int(margin.argmax())


def varied_weight(model, seed: int) -> torch.Tensor:
    """A positive norm weight spread over two orders of magnitude, so that ignoring it changes a decoding."""
    return torch.exp(4 * torch.rand(model.cfg.d_model, generator=torch.Generator().manual_seed(seed)) - 2)


def vary_final_norm(model) -> None:
    """Give an unfolded final norm (the SoLU model's) a :func:`varied_weight`."""
    if hasattr(model.ln_final, "w"):
        with torch.no_grad():
            model.ln_final.w.copy_(varied_weight(model, 5))


def nonzero_bos(model) -> None:
    """Give BOS a random embedding. The tiny Llama-style checkpoints use BOS as their padding
    token, whose embedding ``transformers`` initialises to zero, so every residual vector at BOS
    is exactly zero there: cosine-based measures (redundancy, codebook snapping) are degenerate
    on a zero vector, which no trained model has."""
    with torch.no_grad():
        bos = model.tokenizer.bos_token_id
        if not model.W_E[bos].any():
            model.W_E[bos] = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(7))


def relu_planted(model, layer: int):
    """A copy of ``model`` whose MLP ``layer`` (with the norm on its output) is exactly
    ``relu(x @ W_enc + b_enc) @ W_dec + b_dec``, and the ReLU transcoder with those weights.

    A plain MLP gets ReLU (SoLU also loses the LayerNorm on its activations); a gated MLP a
    step gate and a linear branch equal to the gate's input, so ``step(g) * g = relu(g)``;
    a norm on the MLP output (Gemma 2's ``ln2_post``, post-norm OLMo's ``ln2``) is made linear
    (eps 1e12 dwarfs ``mean(v^2)``, so the RMSNorm is ``v / 1e6 * w`` with ``w = 2e6``: it
    doubles its input). The transcoder reads what the MLP reads (``resid_mid`` in post-norm blocks).
    """
    from interp.hooks import output_norm
    from interp.transcoders import registry
    from interp.transcoders.data import model_layer_hooks

    planted = copy.deepcopy(model)
    block = planted.blocks[layer]
    mlp = block.mlp
    with torch.no_grad():
        if planted.cfg.gated_mlp:
            mlp.W_in.copy_(mlp.W_gate)
            mlp.act_fn = lambda t: (t > 0).to(t.dtype)
            W_enc, b_enc = mlp.W_gate.clone(), torch.zeros(planted.cfg.d_mlp)
            b_dec = mlp.b_out + mlp.b_in @ mlp.W_out  # b_in is added to the gated product
        else:
            mlp.act_fn = torch.relu
            if getattr(mlp, "ln", None) is not None:
                mlp.ln = torch.nn.Identity()
            W_enc, b_enc, b_dec = mlp.W_in.clone(), mlp.b_in.clone(), mlp.b_out.clone()
        W_dec = mlp.W_out.clone()
        norm = output_norm(planted, layer, "mlp")
        if norm is not None:
            norm.eps = 1e12
            norm.w.fill_(2e6)
            W_dec, b_dec = 2 * W_dec, 2 * b_dec
    arch = registry.get("relu")
    tc = arch.transcoder(arch.config(d_in=W_enc.shape[0], d_out=W_dec.shape[1], d_sae=W_enc.shape[1]))
    with torch.no_grad():
        tc.W_enc.copy_(W_enc)
        tc.b_enc.copy_(b_enc)
        tc.W_dec.copy_(W_dec)
        tc.b_dec.copy_(b_dec)
    tc.hook_name, tc.hook_name_out = model_layer_hooks(planted, layer)
    return planted.eval(), tc.eval()


def rows_of(activation: torch.Tensor) -> torch.Tensor:
    """``[batch, pos, ...]`` -> ``[batch * pos, d]``, as a store holds them."""
    return activation.reshape(activation.shape[0] * activation.shape[1], -1)


# --- cache -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", MATRIX)
def test_cache_equals_run_with_cache(family, family_models, tmp_path):
    from interp.cache import CacheConfig, StreamingActivations, cache_activations
    from interp.errors import UnknownHookError
    from interp.hooks import all_sites, opened, resolve

    model = family_models[family]
    tokens = token_ids(model)
    # every site but the attention scores and pattern (one value per pair of positions), and the
    # ones TransformerLens computes only behind a flag, asked for by name: the capture turns it on
    sites = {site: names for site, names in all_sites(model).items() if site not in ("attn_scores", "pattern")}
    sites["mlp_in"] = resolve(model, "hook_mlp_in")
    names = [name for site_names in sites.values() for name in site_names]
    if model.cfg.parallel_attn_mlp:
        assert sites["resid_mid"] == []
        with pytest.raises(UnknownHookError, match="run in parallel"):
            resolve(model, "resid_mid", 0)
    assert all(len(site_names) in (0, model.cfg.n_layers) for site_names in sites.values())
    assert all(sites[site] for site in ("resid_pre", "z", "attn_out", "ln2_normalized", "pre", "post", "mlp_out", "resid_post"))

    store = cache_activations(model, names, tokens, tmp_path / "store", CacheConfig(batch_size=4, progress=False))
    assert not model.cfg.use_hook_mlp_in  # turned on for the capture only
    stored = store.read_all()
    expected = {name: [] for name in names}
    for batch in tokens.split(4):  # the store's forward batches
        with opened(model, names):
            _, cache = model.run_with_cache(batch, names_filter=names)
        for name in names:
            expected[name].append(rows_of(cache[name]))
    assert torch.equal(stored.tokens, tokens.reshape(-1))
    for name in names:
        assert torch.equal(stored.acts[name], torch.cat(expected[name])), name

    stream = StreamingActivations(model, names, tokens, forward_batch=4, fused=True)
    seen = 0
    for batch in stream.batches(24, seed=1):
        rows = batch.row_ids(CTX)
        seen += len(rows)
        for name in names:
            torch.testing.assert_close(batch.acts[name], stored.acts[name][rows], rtol=1e-5, atol=1e-5)
    assert seen == tokens.numel()


# --- transcoders -------------------------------------------------------------------------


@pytest.mark.parametrize("family", MATRIX)
def test_transcoder_reads_the_mlp_input_and_writes_what_the_mlp_adds(family, family_models):
    from interp.transcoders.data import model_layer_hooks

    model = family_models[family]
    layer = last(model)
    hin, hout = model_layer_hooks(model, layer)  # ln2_normalized; resid_mid in post-norm blocks
    mlp = model.blocks[layer].mlp
    _, cache = model.run_with_cache(token_ids(model, n=2))
    x, y = cache[hin], cache[hout]
    gate = mlp.W_gate if model.cfg.gated_mlp else mlp.W_in
    bias = 0 if model.cfg.gated_mlp else mlp.b_in
    torch.testing.assert_close(cache[f"blocks.{layer}.mlp.hook_pre"], x @ gate + bias, rtol=1e-4, atol=1e-5)
    before = cache[f"blocks.{layer}.hook_resid_pre"] + cache[f"blocks.{layer}.hook_attn_out"]
    torch.testing.assert_close(cache[f"blocks.{layer}.hook_resid_post"], before + y, rtol=1e-5, atol=1e-5)
    if model.cfg.gated_mlp:  # the activation is the gated product
        product = mlp.act_fn(cache[f"blocks.{layer}.mlp.hook_pre"]) * cache[f"blocks.{layer}.mlp.hook_pre_linear"] + mlp.b_in
        torch.testing.assert_close(cache[f"blocks.{layer}.mlp.hook_post"], product)


@pytest.mark.parametrize("family", MATRIX)
def test_splice_and_eval_of_an_exact_transcoder(family, family_models):
    from interp.errors import TranscoderLoadError
    from interp.hooks import is_post_norm
    from interp.interventions import ablate_mlps
    from interp.transcoders import CrossLayerTranscoder, evaluate, for_model, splice
    from interp.transcoders.evaluation import EvalConfig

    model, tc = relu_planted(family_models[family], layer=0)
    tokens = token_ids(model, n=6)
    with torch.no_grad():
        clean = model(tokens)
        with splice(model, {0: tc}):
            spliced = model(tokens)
        torch.testing.assert_close(spliced, clean, rtol=1e-4, atol=1e-4)
        with ablate_mlps(model, {0: None}):
            zero = float(model(tokens, return_type="loss"))
    result = evaluate({0: tc}, EvalConfig(run="", batch_size=3, n_features=2, progress=False, device="cpu"), model=model, tokens=tokens)
    (row,) = result.layers
    assert row.fvu < 1e-8
    assert row.ce_spliced == pytest.approx(result.ce_clean, abs=1e-5)
    assert row.ce_zero_ablated == pytest.approx(zero, abs=1e-5)
    assert result.recovered_all_vs_zero == pytest.approx(1.0, abs=1e-3)
    if is_post_norm(model.cfg.original_architecture):  # ln2 normalises the MLP's output there: not an input
        tc.hook_name = "blocks.0.ln2.hook_normalized"
        with pytest.raises(TranscoderLoadError, match="post-norm"):
            evaluate({0: tc}, EvalConfig(run="", progress=False, device="cpu"), model=model, tokens=tokens)
        clt = CrossLayerTranscoder.from_weights(torch.zeros(1, model.cfg.d_model, 4), torch.zeros(1, 4),
                                                [torch.zeros(4, 1, model.cfg.d_model)], layers=[0], input_site="ln2_normalized")
        with pytest.raises(TranscoderLoadError, match="post-norm"):
            for_model(model, clt, cross_layer=True)


@pytest.mark.parametrize("family", MATRIX)
def test_transcoder_training_lowers_fvu(family, family_models, tmp_path):
    from interp.cache import StreamingActivations
    from interp.hooks import mlp_input_site
    from interp.transcoders import OptimConfig, TrainConfig, evaluate, registry, train
    from interp.transcoders.data import model_layer_hooks, required_hooks
    from interp.transcoders.evaluation import EvalConfig

    model = family_models[family]
    layer = last(model)
    tokens = token_ids(model, n=32, seed=1)
    cfg = TrainConfig(model="unused", layers=str(layer), arch="topk", k=16, expansion=2, tokens="8k", batch_size=128,
                      out=str(tmp_path / "run"), checkpoint_every=None, progress=False, device="cpu", optim=OptimConfig(lr=1e-2))
    source = StreamingActivations(model, required_hooks([layer], mlp_input_site(model.cfg.original_architecture)), tokens,
                                  forward_batch=16)
    train(cfg, model=model, source=source)
    eval_cfg = EvalConfig(run=str(tmp_path / "run"), batch_size=8, n_features=1, progress=False, device="cpu")
    trained = evaluate(str(tmp_path / "run"), eval_cfg, model=model, tokens=tokens[:8])
    arch = registry.get("topk")
    init = arch.transcoder(cfg.arch_config(model.cfg.d_model, model.cfg.d_model), seed=cfg.seed * 1000 + layer)
    init.hook_name, init.hook_name_out = model_layer_hooks(model, layer)
    before = evaluate({layer: init}, eval_cfg, model=model, tokens=tokens[:8])
    assert trained.layers[0].fvu < min(0.75, 0.5 * before.layers[0].fvu)


# --- neurons -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", MATRIX)
def test_planted_neuron_decodes_to_its_token(family, family_models):
    from interp.errors import ConfigError
    from interp.hooks import output_norm
    from interp.neurons import clamp, decode

    model = copy.deepcopy(family_models[family])
    layer, neuron = last(model), 5
    vary_final_norm(model)
    block = model.blocks[layer]
    target = plantable_token(model)
    direction = unembedding_directions(model)[:, target]
    norm = output_norm(model, layer, "mlp")
    with torch.no_grad():
        if norm is not None:
            # Gemma 2 (ln2_post) and post-norm OLMo (ln2) normalise the MLP output, then scale it by w:
            # a varied w turns the written direction, and a large one lets the clamped neuron dominate
            # the residual stream (the norm bounds the size of the MLP's output otherwise)
            norm.w.copy_(1e4 * varied_weight(model, 3))
            direction = direction / norm.w
        block.mlp.W_out[neuron] = 3 * direction / direction.norm()
    table = decode(model, layers=[layer], k=3)
    top = table.top_ids[table.row_of(layer, neuron)]
    assert top[0] == target
    with torch.no_grad(), clamp(model, layer, neuron, 1e4):  # the neuron then dominates the residual stream
        predicted = model(token_ids(model, n=2)).topk(3, dim=-1).indices
    assert (predicted == top).all()
    if model.cfg.gated_mlp:
        with pytest.raises(ConfigError, match="undefined for a gated MLP"):
            decode(model, layers=[layer], side="in")
    else:
        assert len(decode(model, layers=[layer], side="in", k=2)) == model.cfg.d_mlp


# --- sparsity ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", MATRIX)
def test_sparsity_counts_the_activations_the_mlp_uses(family, family_models):
    from interp.sparsity import measure, topk_thresholding

    model = copy.deepcopy(family_models[family])
    layer, dead, loud = last(model), 3, 7
    mlp = model.blocks[layer].mlp
    with torch.no_grad():
        if model.cfg.gated_mlp:
            mlp.W_gate[:, dead] = 0  # the gate never opens; the linear branch still varies
            mlp.W_in[:, loud] = -50 * mlp.W_gate[:, loud]  # act(g) * (-50 g) <= 0: never positive, large when g > 0
        else:
            mlp.W_in[:, dead] = 0
            mlp.b_in[dead] = -1.0
            mlp.W_in[:, loud] *= 50
            mlp.b_in[loud] = 100.0
    tokens = token_ids(model)
    result = measure(model, [tokens], layers=[layer], progress=False)
    (row,) = result.layers
    assert row.frequency[dead] == 0.0 and row.dead >= 1
    _, cache = model.run_with_cache(tokens)
    pre, post = (cache[f"blocks.{layer}.mlp.{h}"][:, 1:] for h in ("hook_pre", "hook_post"))
    assert row.nonzero == pytest.approx(float((post != 0).double().mean()), abs=1e-12)
    assert row.positive == pytest.approx(float((pre > 0).double().mean()), abs=1e-12)
    if model.cfg.gated_mlp:  # the gated product is counted: zero while the gate is shut
        assert row.nonzero_frequency[dead] == 0.0
        assert (cache[f"blocks.{layer}.mlp.hook_pre_linear"][:, 1:, dead] != 0).all()
        assert row.above == pytest.approx(float((post.abs() > 0.1).double().mean()), abs=1e-12)
    kept = []
    hook = (f"blocks.{layer}.mlp.hook_post", lambda act, hook: kept.append(act.clone()))
    with torch.no_grad(), topk_thresholding(model, 1, [layer]), model.hooks(fwd_hooks=[hook]):
        model(tokens)
    winners = kept[0][:, 1:].ne(0).float().argmax(-1)
    strength = post.abs() if model.cfg.gated_mlp else post  # a gated product is as active when negative
    assert torch.equal(winners, strength.argmax(-1))
    assert (winners == loud).float().mean() > 0.5


# --- redundancy --------------------------------------------------------------------------


@pytest.mark.parametrize("family", MATRIX)
def test_redundancy_planted_noop_and_skipping(family, family_models):
    from interp.redundancy import PARALLEL_NOTE, Module, analyze, skip_matches_ablation

    model = copy.deepcopy(family_models[family])
    nonzero_bos(model)
    noop = 0
    with torch.no_grad():  # the block's attention and MLP write exactly zero (through any output norm)
        model.blocks[noop].attn.W_O.zero_()
        model.blocks[noop].attn.b_O.zero_()
        model.blocks[noop].mlp.W_out.zero_()
        model.blocks[noop].mlp.b_out.zero_()
    tokens = token_ids(model, n=6)
    result = analyze(model, tokens[:3], tokens[3:], schedules=["one-shot"], timing_tokens=tokens[:2], timing_repeats=1,
                     progress=False)
    imp = result.importance
    assert imp.score(Module("block", noop)) < 1e-12
    assert imp.ranking(("block",))[0] == Module("block", noop)
    for kind in ("attn", "mlp", "block"):
        assert result.loss_increase(Module(kind, noop)) == pytest.approx(0.0, abs=1e-6)
    if model.cfg.parallel_attn_mlp:
        assert result.notes == [PARALLEL_NOTE] and PARALLEL_NOTE in result.summary()
        assert all(math.isnan(v) for v in imp.attn + imp.mlp)
        assert {c.strategy: c.metric for c in result.curves} == {"attn": "output", "mlp": "output", "block": "residual",
                                                                 "joint": "output"}
    else:
        assert result.notes == []
        assert imp.score(Module("attn", noop)) < 1e-12 and imp.score(Module("mlp", noop)) < 1e-12
        assert imp.ranking(("attn", "mlp"))[0].layer == noop
    assert all(p.skip_max_abs_diff < 1e-5 for c in result.curves for p in c.points)
    for layer in range(model.cfg.n_layers):
        for kind in ("attn", "mlp", "block"):
            assert skip_matches_ablation(model, [Module(kind, layer)], tokens[:2]) < 1e-5


# --- codebooks ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", MATRIX)
def test_codebooks_identity_planted_code_and_training(family, family_models):
    from interp.codebooks import CODEBOOK_SITES, Codebooks, code_top_tokens, inserted, train_codebooks
    from interp.hooks import hook_name

    model = copy.deepcopy(family_models[family])
    vary_final_norm(model)
    nonzero_bos(model)
    layer = last(model)
    tokens = token_ids(model, n=2)
    n_rows = tokens.numel()
    books = Codebooks.create(model, list(CODEBOOK_SITES), layers=[layer], n_codes=n_rows, k=1)
    names = books.hooks
    with torch.no_grad():
        clean, cache = model.run_with_cache(tokens, names_filter=names)
        for name, book in books.items():  # every code is one position's own activation
            acts = cache[name].reshape(n_rows, book.cfg.n_groups, book.cfg.d)
            book.codebook.copy_(acts.transpose(0, 1))
        for name in names:  # one bottleneck at a time, so each sees the clean activations
            with inserted(model, books, only=[name]) as run:
                snapped = model(tokens)
            torch.testing.assert_close(snapped, clean, rtol=1e-5, atol=1e-5)
            own = torch.arange(n_rows).reshape(tokens.shape)[..., None] + books[name].cfg.n_codes * torch.arange(
                books[name].cfg.n_groups)
            chosen = run.codes[name][..., 0]
            duplicate = books[name].codebook[torch.arange(chosen.shape[-1]), chosen % n_rows] == \
                books[name].codebook[torch.arange(chosen.shape[-1]), own % n_rows]
            assert duplicate.all()

        target = plantable_token(model)
        site = hook_name("mlp_out", layer)
        direction = unembedding_directions(model)[:, target]
        books[site].codebook[0, 0] = 1e5 * direction / direction.norm()
        top = [text for text, _ in code_top_tokens(model, books, site, 0, n=3)]
        assert top[0] == model.tokenizer.decode([target])
        with inserted(model, books, only=[site], force={site: [0]}):  # the code then dominates the residual stream
            predicted = model(tokens).topk(3, dim=-1).indices
        rows = [[model.tokenizer.decode([i]) for i in row] for row in predicted.reshape(-1, 3).tolist()]
        assert all(row[0] == top[0] and sorted(row) == sorted(top) for row in rows)  # near-ties may swap 2nd and 3rd

    trained = Codebooks.create(model, ["mlp_out"], layers=[layer], n_codes=16, k=1)
    hook = trained.hooks[0]
    with torch.no_grad(), inserted(model, trained, loss=True) as run:
        model(tokens)
        before = float(run.codebook_loss())
    for p in model.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(trained.parameters(), lr=3e-2)
    train_codebooks(model, trained, iter([tokens] * 30), optimizer, steps=30, progress=False)
    with torch.no_grad(), inserted(model, trained, loss=True) as run:
        model(tokens)
        assert float(run.codebook_loss()) < 0.7 * before, hook


# --- units -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", MATRIX)
def test_units_are_exactly_faithful_on_a_planted_relu_mlp(family, family_models):
    from interp.codebooks import Codebooks
    from interp.units import UnitsConfig, compare_units

    model, tc = relu_planted(family_models[family], layer=0)
    tokens = token_ids(model, n=6, vocab=12)  # a small alphabet, so that each token is a class with many positions
    classes = {f"token {t}": tokens == t for t in range(1, 12)}
    books = Codebooks.create(model, ["mlp_out"], layers=[0], n_codes=tokens.numel(), k=1)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=books.hooks)
        books[books.hooks[0]].codebook.copy_(cache[books.hooks[0]].reshape(1, -1, model.cfg.d_model))
    result = compare_units(model, tokens, classes, layers=[0], transcoders={0: tc}, codebooks=books,
                           cfg=UnitsConfig(neuron_k=model.cfg.d_mlp, min_positives=3, progress=False))
    rows = {row.kind: row for row in result.rows}
    assert set(rows) == {"neurons", "transcoder", "codebook"}
    for row in rows.values():
        assert row.fvu < 1e-8, row.kind
        assert row.ce == pytest.approx(result.ce_clean, abs=1e-5), row.kind
    per_class = {(c.kind, c.cls): c.precision for c in result.classes}
    assert [per_class["neurons", name] for name in result.base_rates] == \
        pytest.approx([per_class["transcoder", name] for name in result.base_rates])
    assert rows["neurons"].l0 == pytest.approx(rows["transcoder"].l0)
