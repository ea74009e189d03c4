"""Cross-layer transcoders: the formula, folding, decoding paths, files, training, and a planted
model whose MLPs at layers 0 and 2 compute the same function of the layer-0 residual stream."""

from __future__ import annotations

import json

import pytest
import torch
from support.planted_clt import PLANTED_CTX, PLANTED_D, PLANTED_VOCAB, exact_clt, planted_model

from interp.errors import ConfigError, TranscoderLoadError
from interp.transcoders import InMemoryActivations, TrainConfig, evaluate, load_run, registry, splice, train
from interp.transcoders.clt import CrossLayerTranscoder
from interp.transcoders.clt_format import circuit_tracer_reads, load_clt, save_clt
from interp.transcoders.data import cross_layer_wiring, required_hooks
from interp.transcoders.loading import for_model
from interp.transcoders.trainer import OptimConfig

ACTIVATIONS = [
    {"activation": "relu"},
    {"activation": "jumprelu"},
    {"activation": "topk", "k": 3},
    {"activation": "topk", "k": 7, "topk_over": "all"},
]


def random_clt(settings: dict, *, skip: bool = True, L: int = 3, d: int = 8, F: int = 12, seed: int = 0, **more):
    """A CLT with random weights, thresholds and biases (raw space) and the source-major decoders it was built from."""
    g = torch.Generator().manual_seed(seed)
    decoders = [torch.randn(F, L - i, d, generator=g) for i in range(L)]
    extra = {"threshold": 0.3 + torch.rand(L, F, generator=g)} if settings["activation"] == "jumprelu" else {}
    clt = CrossLayerTranscoder.from_weights(
        torch.randn(L, d, F, generator=g), torch.randn(L, F, generator=g) - 0.5, decoders, torch.randn(L, d, generator=g),
        layers=[1, 2, 4][:L], W_skip=torch.randn(L, d, d, generator=g) if skip else None, **extra, **settings, **more,
    )
    if settings.get("topk_over") == "all":
        clt.topk_threshold.fill_(0.8)
    return clt, decoders


def formula(clt: CrossLayerTranscoder, decoders: list[torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The module docstring's formula written out, layer by layer (raw weights, no normalisation)."""
    cfg, L = clt.cfg, clt.n_layers
    acts = []
    for i in range(L):
        pre = x[:, i] @ clt.W_enc[i] + clt.b_enc[i]
        if cfg.activation == "relu":
            a = pre.relu()
        elif cfg.activation == "jumprelu":
            a = pre * (pre > clt.threshold[i])
        elif cfg.topk_over == "all":
            a = pre * (pre > clt.topk_threshold)
        else:
            top = pre.topk(cfg.k, dim=1)
            a = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
        acts.append(a)
    outs = []
    for m in range(L):
        y = clt.b_dec[m] + sum(acts[i] @ decoders[i][:, m - i] for i in range(m + 1))
        if cfg.skip_connection:
            y = y + x[:, m] @ clt.W_skip[m].T
        outs.append(y)
    return torch.stack(outs, 1), torch.stack(acts, 1)


@pytest.mark.parametrize("settings", ACTIVATIONS, ids=lambda s: "-".join(map(str, s.values())))
def test_forward_is_the_formula(settings):
    clt, decoders = random_clt(settings)
    x = torch.randn(40, 3, 8)
    want_y, want_acts = formula(clt, decoders, x)
    with torch.no_grad():
        y, acts = clt.forward_with_activations(x)
        torch.testing.assert_close(acts, want_acts)
        torch.testing.assert_close(y, want_y, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(clt(x.reshape(5, 8, 3, 8)), want_y.reshape(5, 8, 3, 8), rtol=1e-5, atol=1e-4)
        for i, layer in enumerate(clt.layers):  # the per-layer interface attribution uses
            torch.testing.assert_close(clt.encode_layer(x[:, i], layer), want_acts[:, i])
            torch.testing.assert_close(clt.layer_pre_activation(x[:, i], layer), x[:, i] @ clt.W_enc[i] + clt.b_enc[i])
            torch.testing.assert_close(clt.decoder_vectors(layer), decoders[i])
            torch.testing.assert_close(clt.total_write(layer, torch.tensor([2, 0])), decoders[i][[2, 0]].sum(1))
            assert clt.output_layers(layer) == clt.layers[i:]
            out = clt.decode_output(want_acts[:, : i + 1], layer) + clt.skip_layer(x[:, i], layer)
            torch.testing.assert_close(out, want_y[:, i], rtol=1e-5, atol=1e-4)
    assert (want_acts > 0).float().mean() < 0.9, "the case should have inactive latents"


@pytest.mark.parametrize("settings", ACTIVATIONS, ids=lambda s: "-".join(map(str, s.values())))
def test_normalisation_folds_exactly(settings):
    arch = registry.get("clt")
    clt = arch.transcoder(arch.config(d_in=8, d_out=8, d_sae=12, n_layers=3, skip_connection=True, **settings), seed=0)
    x = 3 * torch.randn(64, 3, 8) + torch.arange(3.0)[:, None]
    y = 5 * torch.randn(64, 3, 8) - torch.arange(3.0)[:, None] ** 2
    clt.set_normalisation(x, y)
    assert clt.in_scale.flatten().unique().numel() == 3, "each layer has its own scale"
    with torch.no_grad():
        clt.b_enc.normal_()
        clt.W_skip.normal_()
        clt.b_dec.normal_()
        clt.topk_threshold.fill_(0.5)
    folded = clt.folded()
    assert folded.is_folded and not clt.is_folded
    with torch.no_grad():
        torch.testing.assert_close(folded(x), clt(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded.pre_activation(x), clt.pre_activation(x), rtol=1e-4, atol=1e-4)
        acts = clt.encode(x)  # decode and skip each unchanged by folding (the skip's constant is in b_dec)
        torch.testing.assert_close(folded.decode(acts), clt.decode(acts), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded.skip(x), clt.skip(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded.skip_layer(x[:, 1], 1), clt.skip_layer(x[:, 1], 1), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded.decode_output(acts[:, :2], 1), clt.decode_output(acts[:, :2], 1), rtol=1e-4, atol=1e-4)


def test_a_clt_saved_when_ln2_normalized_was_called_mlp_in_loads(tmp_path):
    """interp's CLT files written before it took TransformerLens' site names record input_site
    'mlp_in' for ln2_normalized; their feature_input_hook (ln2.hook_normalized) never changed."""
    clt, _ = random_clt({"activation": "relu"}, input_site="ln2_normalized")
    save_clt(clt, tmp_path)
    config = json.loads((tmp_path / "config.yaml").read_text())
    assert config["feature_input_hook"] == "ln2.hook_normalized"
    config["interp"]["config"]["input_site"] = "mlp_in"
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    back = load_clt(tmp_path)
    assert back.cfg == clt.cfg and back.hook_names_in == ["blocks.1.ln2.hook_normalized", "blocks.2.ln2.hook_normalized",
                                                          "blocks.4.ln2.hook_normalized"]


def test_decoder_norms_are_the_concatenated_norms():
    clt, decoders = random_clt({"activation": "relu"})
    want = torch.stack([d.flatten(1).norm(dim=1) for d in decoders])
    torch.testing.assert_close(clt.decoder_norms(), want)


@pytest.mark.parametrize("settings", ACTIVATIONS, ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("skip", [False, True])
def test_files_round_trip_in_memory_and_lazy(tmp_path, settings, skip):
    clt, _ = random_clt(settings, skip=skip)
    clt.wire(cross_layer_wiring([1, 2, 4], clt.cfg.input_site))
    save_clt(clt, tmp_path, metadata={"model_name": "planted"})
    native = circuit_tracer_reads(clt)
    assert (tmp_path / "W_enc_0.safetensors").is_file() == native
    assert (tmp_path / "interp_W_enc_0.safetensors").is_file() == (not native)
    config = json.loads((tmp_path / "config.yaml").read_text())
    assert config["model_kind"] == "cross_layer_transcoder" and config["feature_input_hook"] == "hook_resid_mid"
    assert config["interp"]["layers"] == [1, 2, 4] and config["model_name"] == "planted"
    x = torch.randn(30, 3, 8)
    for lazy in (False, True):
        back = load_clt(tmp_path, lazy_decoder=lazy)
        assert back.lazy == lazy and back.layers == [1, 2, 4] and back.cfg == clt.cfg
        with torch.no_grad():
            torch.testing.assert_close(back(x), clt(x), rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(back.decoder_vectors(2, torch.tensor([5, 1])), clt.decoder_vectors(2, torch.tensor([5, 1])))
            acts = back.encode(x)
            torch.testing.assert_close(back.decode_output(acts[:, :2], 2), clt.decode_output(acts[:, :2], 2), rtol=1e-5, atol=1e-4)
    assert "W_dec" not in dict(load_clt(tmp_path, lazy_decoder=True).named_parameters())


def test_circuit_tracer_written_directory_loads_with_defaults(tmp_path):
    """A directory without interp's config (as circuit-tracer writes it): ReLU or JumpReLU, layers 0..n-1."""
    from safetensors.torch import save_file

    L, F, d = 2, 5, 4
    g = torch.Generator().manual_seed(0)
    enc = [torch.randn(F, d, generator=g) for _ in range(L)]
    dec = [torch.randn(F, L - i, d, generator=g) for i in range(L)]
    for i in range(L):
        save_file({f"W_enc_{i}": enc[i], f"b_enc_{i}": torch.zeros(F), f"b_dec_{i}": torch.ones(d),
                   f"threshold_{i}": torch.full((F,), 0.2)}, str(tmp_path / f"W_enc_{i}.safetensors"))
        save_file({f"W_dec_{i}": dec[i]}, str(tmp_path / f"W_dec_{i}.safetensors"))
    clt = load_clt(tmp_path, input_site="ln2_normalized")
    assert clt.cfg.activation == "jumprelu" and clt.layers == [0, 1] and clt.cfg.input_site == "ln2_normalized"
    assert clt.hook_names_in == ["blocks.0.ln2.hook_normalized", "blocks.1.ln2.hook_normalized"]
    torch.testing.assert_close(clt.W_enc[1], enc[1].T)
    torch.testing.assert_close(clt.decoder_vectors(0), dec[0])
    assert isinstance(load_run(tmp_path), CrossLayerTranscoder)


# --- training -------------------------------------------------------------------------------

D_MODEL = 16


@pytest.fixture(scope="module")
def tiny():
    """A random 3-layer model (the MLPs to imitate) and activations for training and held out."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=3, d_model=D_MODEL, n_heads=2, d_head=8, d_mlp=32, d_vocab=40, n_ctx=16,
                                  act_fn="relu", normalization_type="LN", seed=0, device="cpu")
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.b_in.fill_(-1.0)
    hooks = required_hooks([cross_layer_wiring([0, 1, 2])])

    def source(n, seed):
        tokens = torch.randint(0, 40, (n, 16), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
        return InMemoryActivations({h: cache[h].reshape(-1, D_MODEL) for h in hooks}, tokens)

    return model, source(128, 1), source(32, 2)


def clt_cfg(tmp_path, name="clt", **kw) -> TrainConfig:
    base = {"arch": "clt", "layers": "all", "expansion": 2, "tokens": "38400", "batch_size": 256, "out": str(tmp_path / name),
            "progress": False, "device": "cpu", "checkpoint_every": None, "optim": OptimConfig(lr=1e-2)}
    return TrainConfig(**{**base, **kw})


def held_out_fvu(clt, src) -> torch.Tensor:
    x = torch.stack([src.acts[h] for h in clt.hook_names_in], 1)
    y = torch.stack([src.acts[h] for h in clt.hook_names_out], 1)
    with torch.no_grad():
        return (clt(x) - y).pow(2).sum((0, 2)) / (y - y.mean(0)).pow(2).sum((0, 2))


@pytest.mark.parametrize(
    "settings",
    [{"activation": "topk", "k": 4}, {"activation": "topk", "k": 12, "topk_over": "all"},
     {"activation": "relu", "sparsity_coefficient": 1e-2}, {"activation": "jumprelu", "skip_connection": True}],
    ids=["topk", "topk-all", "relu", "jumprelu-skip"],
)
def test_every_activation_beats_the_mean_baseline(tmp_path, tiny, settings):
    _, source, held_out = tiny
    result = train(clt_cfg(tmp_path, **settings), source=source)
    assert result.steps == 150 and list(result.final) == ["clt"]
    assert {"l0_0", "fvu_2"} <= set(result.final["clt"]) and "layer 2" in result.summary()
    clt = load_run(tmp_path / "clt")
    assert isinstance(clt, CrossLayerTranscoder) and clt.cfg.activation == settings["activation"] and clt.layers == [0, 1, 2]
    fvu = held_out_fvu(clt, held_out)
    assert (fvu < 0.5).all(), f"held-out FVU per layer {fvu.tolist()}"
    x = torch.stack([held_out.acts[h] for h in clt.hook_names_in], 1)
    with torch.no_grad():
        l0 = (clt.encode(x) > 0).float().sum(-1).mean(0)
    if settings.get("topk_over") == "all":
        assert 4 < l0.sum() < 24, f"inference threshold gives total L0 {l0.tolist()}"  # k = 12 in training
    elif settings["activation"] == "topk":
        assert (l0 <= 4).all()
    else:
        assert (l0 < 0.6 * clt.d_sae).all()


def test_resume_is_bit_for_bit(tmp_path, tiny, interrupted):
    _, source, _ = tiny
    kw = {"tokens": "10240", "checkpoint_every": 20, "k": 12, "topk_over": "all"}
    train(clt_cfg(tmp_path, "full", **kw), source=source)
    interrupted(lambda: train(clt_cfg(tmp_path, "half", **kw), source=source), 25)
    train(clt_cfg(tmp_path, "half", resume=True, **kw), source=source)
    a, b = load_run(tmp_path / "full"), load_run(tmp_path / "half")
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), f"{name} differs after resume"
    assert float(a.topk_threshold) > 0


def test_config_errors():
    with pytest.raises(ValueError, match="--activation applies to clt, not 'topk'"):
        TrainConfig(arch="topk", activation="relu")
    with pytest.raises(ValueError, match="--l1-coefficient applies to relu, skip, not 'clt'"):
        TrainConfig(arch="clt", l1_coefficient=1e-3)
    arch = registry.get("clt")
    with pytest.raises(ConfigError, match="--k must be between 1 and 8"):
        arch.config(d_in=4, d_out=4, d_sae=8, n_layers=2, k=9)
    assert arch.config(d_in=4, d_out=4, d_sae=8, n_layers=2, k=9, topk_over="all").k == 9
    with pytest.raises(Exception, match="activation"):  # ConfigError (or the suite's run-time type check first)
        arch.config(d_in=4, d_out=4, d_sae=8, n_layers=2, activation="elu")
    assert [w.key for w in TrainConfig(arch="clt").wirings([0, 2])] == ["clt"]
    assert TrainConfig(arch="clt", input_site="ln2_normalized").wirings([0])[0].hooks_in == ("blocks.0.ln2.hook_normalized",)
    assert TrainConfig(arch="clt").wirings([0], "resid_mid")[0].hooks_in == ("blocks.0.hook_resid_mid",)
    with pytest.raises(ConfigError, match="post-norm blocks normalises the MLP's output"):  # OLMo 2: ln2 is after the MLP
        TrainConfig(arch="clt", input_site="ln2_normalized").wirings([0], "resid_mid")
    old = arch.config(d_in=4, d_out=4, d_sae=8, k=4)
    old.input_site = "mlp_in"  # set after __init__, past the suite's run-time type check of the Literal
    with pytest.raises(ConfigError, match="mlp_in is ambiguous.*ln2_normalized.*resid_mid"):
        old.__post_init__()
    clt = arch.transcoder(arch.config(d_in=4, d_out=4, d_sae=8, n_layers=2, k=4))
    with pytest.raises(ConfigError, match="cannot sit"):
        clt.wire(cross_layer_wiring([0, 1, 2]))


def test_cli_lists_the_clt_settings(capsys):
    from interp.cli import main

    with pytest.raises(SystemExit):
        main(["transcoder", "train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--activation", "--topk-over", "--input-site", "--skip-connection", "--sparsity-coefficient", "--tanh-scale"):
        assert flag in text.replace("_", "-"), flag
    assert "clt" in text


# --- a planted cross-layer feature ---------------------------------------------------------

@pytest.fixture(scope="module")
def planted():
    model, dirs = planted_model()
    hooks = required_hooks([cross_layer_wiring([0, 1, 2])])
    tokens = torch.randint(0, PLANTED_VOCAB, (512, PLANTED_CTX), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
    return model, dirs, InMemoryActivations({h: cache[h].reshape(-1, PLANTED_D) for h in hooks}, tokens), tokens


def test_planted_model_is_what_it_says(planted):
    _, dirs, source, _ = planted
    x0 = source.acts["blocks.0.hook_resid_mid"]
    relu = (x0 @ dirs["u"] - 0.5).relu()
    torch.testing.assert_close(source.acts["blocks.0.hook_mlp_out"], 2 * relu @ dirs["v0"].T, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(source.acts["blocks.2.hook_mlp_out"], 2 * relu @ dirs["v2"].T, atol=1e-5, rtol=1e-5)
    assert (relu > 0).any(1).float().mean() > 0.5


def test_exact_clt_is_the_replacement_model(tmp_path, planted):
    """A CLT that computes the MLPs exactly: FVU 0 and the clean CE with every MLP replaced."""
    model, dirs, _, tokens = planted
    clt = exact_clt(model, dirs)
    with torch.no_grad(), splice(model, clt):
        replaced = model(tokens[:8])
    torch.testing.assert_close(replaced, model(tokens[:8]), rtol=1e-4, atol=1e-4)
    with pytest.raises(TranscoderLoadError, match="cross-layer transcoder"):
        for_model(model, clt)
    result = evaluate(clt, model=model, tokens=tokens[:64])
    assert result.kind == "cross-layer" and abs(result.ce_all_zero_ablated - result.ce_clean) > 0.05  # the MLPs matter
    assert result.ce_all_spliced == pytest.approx(result.ce_clean, abs=1e-4)
    assert all(r.fvu < 1e-8 for r in result.layers) and result.layers[2].l0 == 0
    assert result.total_l0 == pytest.approx(result.layers[0].l0 + result.layers[1].l0) and result.total_l0 > 0.5
    assert result.cross_layer.decoder_share[0] == pytest.approx([0.5, 0.0, 0.5], abs=1e-6)
    assert all(r.recovered_vs_zero == pytest.approx(1.0, abs=1e-3) for r in result.layers)
    # beside per-layer transcoders that are the MLPs too (layer 2's needs its own latents)
    save_clt(clt, tmp_path / "clt")
    result = evaluate(tmp_path / "clt", model=model, tokens=tokens[:64])
    result.save(tmp_path / "eval.json")
    html = result.to_html()
    assert "Cross-layer transcoder" in html and "Where each layer" in html


def test_trained_clt_finds_the_planted_cross_layer_feature(tmp_path, planted):
    """One layer-0 latent per shared neuron writes to outputs 0 and 2, and layer 2's latents stay
    almost silent; per-layer transcoders (one-layer CLTs, the same loss) need layer-2 latents."""
    _, dirs, source, _ = planted
    common = {"activation": "relu", "expansion": 1, "tokens": "128k", "sparsity_coefficient": 1e-2}
    train(clt_cfg(tmp_path, "clt", **common), source=source)
    clt = load_run(tmp_path / "clt").folded()
    x = torch.stack([source.acts[h] for h in clt.hook_names_in], 1)
    with torch.no_grad():
        l0 = (clt.encode(x) > 0).float().sum(-1).mean(0)
        assert (held_out_fvu(clt, source) < 0.01).all()
        cos = torch.nn.functional.cosine_similarity
        for j in range(3):
            latent = cos(clt.W_enc[0], dirs["u"][:, j : j + 1], dim=0).argmax()
            assert cos(clt.W_enc[0][:, latent], dirs["u"][:, j], dim=0) > 0.9
            rows = clt.decoder_vectors(0, latent[None])[0]  # [3 outputs, d]
            assert cos(rows[0], dirs["v0"][:, j], dim=0) > 0.99 and cos(rows[2], dirs["v2"][:, j], dim=0) > 0.99
            assert rows[2].norm() > 0.8 * rows[0].norm() and rows[1].norm() < 0.2 * rows[0].norm()
    train(clt_cfg(tmp_path, "layer2", layers="2", **common), source=source)
    alone = load_run(tmp_path / "layer2")
    with torch.no_grad():
        alone_l0 = (alone.encode(x[:, 2:]) > 0).float().sum(-1).mean()
    assert l0[2] < 0.25 * alone_l0, f"CLT layer-2 L0 {l0[2]:.3f}, a layer-2 transcoder's {alone_l0:.3f}"


@pytest.mark.parametrize("fmt", ["saelens", "sparsify"])
def test_saelens_and_sparsify_export_refuse_a_clt_saying_where_it_is(tmp_path, fmt):
    from interp.transcoders.interop import ExportConfig, export

    clt, _ = random_clt({"activation": "relu"}, skip=False)
    save_clt(clt, tmp_path / "clt")
    with pytest.raises(TranscoderLoadError, match="circuit-tracer's CLT layout"):
        export(ExportConfig(run=str(tmp_path / "clt"), format=fmt, out=str(tmp_path / "out")))


def test_eval_result_of_a_clt_round_trips_through_json(tmp_path, planted):
    model, dirs, _, tokens = planted
    result = evaluate(exact_clt(model, dirs), model=model, tokens=tokens[:16])
    result.baseline = evaluate(exact_clt(model, dirs), model=model, tokens=tokens[:16])
    result.save(tmp_path / "eval.json")
    back = type(result).load(tmp_path / "eval.json")
    assert back.kind == "cross-layer" and back.cross_layer == result.cross_layer
    assert back.baseline.kind == "cross-layer" and back.baseline.layers == result.baseline.layers
    assert "(in memory)" in back.summary()
