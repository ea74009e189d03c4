"""Transcoders on a tiny random-weight model whose MLPs are the ground truth to imitate."""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import StoreError, TrainingDivergedError
from interp.transcoders import InMemoryActivations, TrainConfig, formats, registry, train
from interp.transcoders.data import PairedBatches, required_hooks
from interp.transcoders.training import parse_count, parse_layers
from interp.transcoders.trainer import OptimConfig, Trainer, lr_at

D_MODEL = 16


def tiny_model(n_layers: int = 2):
    """Random weights, ReLU MLPs with a negative bias: the MLP each transcoder must imitate."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=D_MODEL, n_heads=2, d_head=8, d_mlp=32, d_vocab=40, n_ctx=16,
        act_fn="relu", normalization_type="LN", seed=0, device="cpu",
    )
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():  # a sparse MLP: about 3 of 32 neurons fire per token, so k=6 suffices
        for block in model.blocks:
            block.mlp.b_in.fill_(-1.0)
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def activations(model, n_contexts: int, seed: int) -> InMemoryActivations:
    tokens = torch.randint(0, model.cfg.d_vocab, (n_contexts, model.cfg.n_ctx), generator=torch.Generator().manual_seed(seed))
    hooks = required_hooks(range(model.cfg.n_layers))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in hooks)
    return InMemoryActivations({h: cache[h].reshape(-1, D_MODEL) for h in hooks}, tokens)


@pytest.fixture(scope="module")
def source(model):
    return activations(model, 128, seed=1)  # 2048 rows


@pytest.fixture(scope="module")
def held_out(model):
    return activations(model, 32, seed=2)


def fvu(tc, src, layer: int) -> float:
    x = src.acts[f"blocks.{layer}.ln2.hook_normalized"]
    y = src.acts[f"blocks.{layer}.hook_mlp_out"]
    with torch.no_grad():
        return ((tc(x) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum()).item()


def small_cfg(tmp_path, arch: str, **kw) -> TrainConfig:
    extra = {"k": 6} if registry.get(arch).sparse_k else {"l1_coefficient": 1e-2}
    if "jumprelu" in arch:
        extra = {"l0_coefficient": 1e-2}
    base = dict(arch=arch, layers="all", expansion=4, tokens="38400", batch_size=256, out=str(tmp_path / arch),
                progress=False, device="cpu", checkpoint_every=None, optim=OptimConfig(lr=1e-2))
    return TrainConfig(**{**base, **extra, **kw})


@pytest.mark.parametrize("arch", ["relu", "topk", "skip", "skip_topk", "jumprelu", "skip_jumprelu"])
def test_every_architecture_beats_the_mean_baseline(tmp_path, source, held_out, arch):
    """Predicting the mean output has FVU 1; a trained transcoder explains most of the MLP."""
    result = train(small_cfg(tmp_path, arch), source=source)
    assert result.steps == 150
    for layer in (0, 1):
        tc = formats.load(tmp_path / arch / f"layer_{layer}")
        assert tc.arch == arch
        score = fvu(tc, held_out, layer)
        assert score < 0.35, f"{arch} layer {layer}: held-out FVU {score:.3f}"
        l0 = (tc.encode(held_out.acts[f"blocks.{layer}.ln2.hook_normalized"]) > 0).float().sum(-1).mean().item()
        assert 0 < l0 < 0.6 * tc.cfg.d_sae
        if registry.get(arch).sparse_k:
            assert l0 <= 6
    assert (tmp_path / arch / "run.json").is_file()


def test_resume_is_bit_for_bit(tmp_path, source, interrupted):
    """N steps in one go equal N/2 steps, a stop, and --resume for the rest."""
    full = small_cfg(tmp_path, "topk", tokens="10240", out=str(tmp_path / "full"), checkpoint_every=20)
    train(full, source=source)
    half = small_cfg(tmp_path, "topk", tokens="10240", out=str(tmp_path / "half"), checkpoint_every=20)
    # Stop after the step-20 checkpoint by running a shorter source budget is not possible
    # (the schedule depends on the total), so interrupt the run instead.
    interrupted(lambda: train(half, source=source), 25)
    assert not (tmp_path / "half" / "layer_0").exists()
    state = torch.load(tmp_path / "half" / "checkpoint" / "state.pt", weights_only=False)
    assert state["trainer"]["step"] == 20
    resumed = small_cfg(tmp_path, "topk", tokens="10240", out=str(tmp_path / "half"), checkpoint_every=20, resume=True)
    train(resumed, source=source)
    for layer in (0, 1):
        a = formats.load(tmp_path / "full" / f"layer_{layer}")
        b = formats.load(tmp_path / "half" / f"layer_{layer}")
        for name, p in a.named_parameters():
            assert torch.equal(p, getattr(b, name)), f"layer {layer} {name} differs after resume"


def test_divergence_stops_and_keeps_last_checkpoint(tmp_path, source):
    cfg = small_cfg(tmp_path, "relu", tokens="10240", checkpoint_every=10)
    real_loss = registry.get("relu").transcoder.loss
    calls = {"n": 0}

    def poisoned(self, x, y, **kw):
        calls["n"] += 1
        out = real_loss(self, x, y, **kw)
        if calls["n"] > 2 * 15:  # two layers per step: diverge at step 15
            out.loss = out.loss * float("nan")
        return out

    registry.get("relu").transcoder.loss = poisoned
    try:
        with pytest.raises(TrainingDivergedError, match="step 10"):
            train(cfg, source=source)
    finally:
        registry.get("relu").transcoder.loss = real_loss
    state = torch.load(tmp_path / "relu" / "checkpoint" / "state.pt", weights_only=False)
    assert state["trainer"]["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["trainer"]["transcoders"]["layer_0"].values())


def test_existing_run_is_not_overwritten(tmp_path, source):
    cfg = small_cfg(tmp_path, "relu", tokens="2560")
    train(cfg, source=source)
    with pytest.raises(StoreError, match="--resume"):
        train(cfg, source=source)


@pytest.mark.parametrize("arch", ["relu", "skip", "jumprelu", "skip_jumprelu", "topk", "skip_topk"])
def test_saelens_loads_our_trained_files_and_agrees(tmp_path, source, arch):
    """A trained run's files load with SAELens' own loader and compute what interp computes
    (TopK ones through the classes interp.transcoders.saelens registers, with the run's k)."""
    from sae_lens import SAE

    import interp.transcoders.saelens  # noqa: F401 - registers interp's TopK transcoders with SAELens

    extra = {"k": 5} if registry.get(arch).sparse_k else {}
    train(small_cfg(tmp_path, arch, tokens="2560", **extra), source=source)
    path = tmp_path / arch / "layer_1"
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["apply_b_dec_to_input"] is False
    assert cfg["metadata"]["hook_name"] == "blocks.1.ln2.hook_normalized"
    assert cfg["metadata"]["hook_name_out"] == "blocks.1.hook_mlp_out"
    sae = SAE.load_from_disk(str(path))
    assert sae.cfg.architecture() == formats.saelens_architecture(arch)
    ours = formats.load(path)
    if extra:
        assert cfg["k"] == 5 and sae.cfg.k == 5 and ours.cfg.k == 5
    x = source.acts["blocks.1.ln2.hook_normalized"][:300]
    with torch.no_grad():
        torch.testing.assert_close(sae(x), ours(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae.encode(x), ours.encode(x), rtol=1e-5, atol=1e-5)
    back = formats.from_saelens(sae)
    assert type(back) is type(ours) and back.cfg.d_sae == ours.cfg.d_sae
    with torch.no_grad():
        torch.testing.assert_close(back(x), ours(x))


def test_normalisation_folds_exactly():
    for name in registry.names(cross_layer=False):  # a CLT's: tests/unit/test_clt.py
        arch = registry.get(name)
        extra = {"k": 4} if arch.sparse_k else {}
        tc = arch.transcoder(arch.config(d_in=8, d_out=6, d_sae=24, **extra), seed=0)
        x, y = 3 * torch.randn(64, 8) + 1, 5 * torch.randn(64, 6) - 2
        tc.set_normalisation(x, y)
        with torch.no_grad():
            tc.b_enc.normal_()
            if tc.has_skip:
                tc.W_skip.normal_()
        before = tc(x)
        folded = tc.folded()
        assert float(folded.in_scale) == 1.0 and float(folded.out_mean.abs().sum()) == 0.0
        torch.testing.assert_close(folded(x), before, rtol=1e-4, atol=1e-4)


def test_paired_batches_resume_position(source):
    a = PairedBatches(source, [0], 256, seed=3)
    it = iter(a)
    seen = [next(it)["layer_0"][0] for _ in range(11)]  # crosses the 8-batch epoch
    position = a.position
    assert position == (1, 3)
    b = iter(PairedBatches(source, [0], 256, seed=3, start=(1, 2)))
    assert torch.equal(next(b)["layer_0"][0], seen[10])


def test_config_errors():
    with pytest.raises(ValueError, match="--k applies"):
        TrainConfig(arch="relu", k=4)
    with pytest.raises(ValueError, match="--l1-coefficient applies to relu, skip, not 'topk'"):
        TrainConfig(arch="topk", l1_coefficient=1e-3)
    with pytest.raises(ValueError, match="--l0-coefficient applies to jumprelu, skip_jumprelu"):
        TrainConfig(arch="relu", l0_coefficient=1e-3)
    with pytest.raises(KeyError, match="choose one of"):
        TrainConfig(arch="nope")
    assert parse_count("5M") == 5_000_000 and parse_count("500k") == 500_000 and parse_count("1200") == 1200
    with pytest.raises(ValueError):
        parse_count("five")
    assert parse_layers("0-2,3", 4) == [0, 1, 2, 3] and parse_layers("all", 2) == [0, 1]
    with pytest.raises(ValueError, match="layers 0..3"):
        parse_layers("7", 4)


def test_lr_schedule():
    cfg = OptimConfig(lr=1.0, warmup_steps=10, decay=0.5)
    assert lr_at(0, 100, cfg) == pytest.approx(0.1)
    assert lr_at(20, 100, cfg) == 1.0
    assert lr_at(75, 100, cfg) == pytest.approx(0.5)
    assert lr_at(99, 100, cfg) == pytest.approx(0.02)


def test_jumprelu_threshold_gradients_are_the_papers_pseudo_derivatives():
    """d f/d theta = -(theta/eps) K((z - theta)/eps), d L0/d theta = -(1/eps) K(...), K a rectangle."""
    from interp.transcoders.architectures.jumprelu import _JumpReLU, _Step

    eps = 0.5
    z = torch.tensor([[0.1, 1.2, 2.0], [0.9, 3.0, -1.0]])
    theta = torch.tensor([0.3, 1.0, 2.5], requires_grad=True)
    out = _JumpReLU.apply(z, theta, eps)
    assert torch.equal(out, torch.tensor([[0.0, 1.2, 0.0], [0.9, 3.0, 0.0]]))
    out.sum().backward()
    # inside the kernel (|z - theta| < eps/2): (0.1 vs 0.3), (1.2 vs 1.0), (2.0 vs 2.5 is at the edge: out)
    expected = torch.tensor([-(0.3 / eps) * 1, -(1.0 / eps) * 1, 0.0])
    torch.testing.assert_close(theta.grad, expected)
    theta.grad = None
    step = _Step.apply(z, theta, eps)
    assert torch.equal(step, (z > theta.detach()).float())
    step.sum().backward()
    torch.testing.assert_close(theta.grad, torch.tensor([-1 / eps, -1 / eps, 0.0]))


def test_jumprelu_l0_penalty_makes_it_sparser(tmp_path, source, held_out):
    l0 = {}
    for coefficient in (0.0, 0.05):
        cfg = small_cfg(tmp_path, "jumprelu", l0_coefficient=coefficient, out=str(tmp_path / f"c{coefficient}"))
        train(cfg, source=source)
        tc = formats.load(tmp_path / f"c{coefficient}" / "layer_0")
        l0[coefficient] = (tc.encode(held_out.acts["blocks.0.ln2.hook_normalized"]) > 0).float().sum(-1).mean().item()
    assert l0[0.05] < 0.9 * l0[0.0], l0


def test_jumprelu_thresholds_train_at_their_scaled_learning_rate(source):
    arch = registry.get("jumprelu")
    tc = arch.transcoder(arch.config(d_in=D_MODEL, d_out=D_MODEL, d_sae=32, threshold_lr_scale=7.0), seed=0)
    trainer = Trainer({"layer_0": tc}, OptimConfig(lr=1e-3, warmup_steps=0), total_steps=10, tokens_per_step=256)
    batch = next(iter(PairedBatches(source, [0], 256, seed=0)))
    trainer.step(batch)
    by_param = {id(p): group["lr"] for group in trainer.optimizer.param_groups for p in group["params"]}
    assert by_param[id(tc.threshold)] == pytest.approx(7e-3)
    assert by_param[id(tc.W_enc)] == pytest.approx(1e-3)
    assert len(trainer.optimizer.param_groups) == 2


@pytest.mark.parametrize("affine", [False, True])
def test_load_pretrained_gemma_scope_transcoder_offline(tmp_path, monkeypatch, affine):
    """``formats.load_pretrained`` through SAELens' own ``SAE.from_pretrained`` and its Gemma
    Scope 2 converter; only the hub's two network calls are answered from local files
    (a small random checkpoint in the release's layout, since nothing can be downloaded here)."""
    from sae_lens.loading import pretrained_sae_loaders as loaders
    from safetensors.torch import save_file

    from interp.transcoders.architectures.jumprelu import JumpReLUTranscoder, SkipJumpReLUTranscoder

    release, sae_id = "gemma-scope-2-270m-pt-transcoders-all", "layer_0_width_16k_l0_small"
    if affine:
        sae_id += "_affine"
    folder = f"transcoder_all/{sae_id}"
    d_in, d_sae, d_out = 12, 40, 12
    g = torch.Generator().manual_seed(0)
    params = {
        "w_enc": torch.randn(d_in, d_sae, generator=g), "w_dec": torch.randn(d_sae, d_out, generator=g),
        "b_enc": torch.randn(d_sae, generator=g), "b_dec": torch.randn(d_out, generator=g),
        "threshold": torch.rand(d_sae, generator=g),
    }
    if affine:
        params["affine_skip_connection"] = torch.randn(d_in, d_out, generator=g)
    (tmp_path / folder).mkdir(parents=True)
    save_file(params, str(tmp_path / folder / "params.safetensors"))
    (tmp_path / folder / "config.json").write_text(json.dumps(
        {"architecture": "jump_relu", "model_name": "gemma-3-270m", "affine_connection": affine,
         "hf_hook_point_in": "model.layers.0.pre_feedforward_layernorm.output",
         "hf_hook_point_out": "model.layers.0.post_feedforward_layernorm.output"}))  # fmt: skip

    def hub_download(repo_id, filename=None, subfolder=None, **_):
        assert repo_id == "google/gemma-scope-2-270m-pt"
        return str(tmp_path / (f"{subfolder}/{filename}" if subfolder else filename))

    monkeypatch.setattr(loaders, "hf_hub_download", hub_download)
    monkeypatch.setattr(loaders, "get_safetensors_tensor_shapes",
                        lambda repo_id, filename: {k: list(v.shape) for k, v in params.items()})  # fmt: skip

    tc = formats.load_pretrained(release, sae_id)
    assert type(tc) is (SkipJumpReLUTranscoder if affine else JumpReLUTranscoder)
    x = torch.randn(64, d_in, generator=g)
    # Gemma Scope's JumpReLU transcoder, written out: f = pre * (pre > threshold), y = f W_dec + b_dec (+ x W_skip)
    pre = x @ params["w_enc"] + params["b_enc"]
    want = (pre * (pre > params["threshold"])) @ params["w_dec"] + params["b_dec"]
    if affine:
        want = want + x @ params["affine_skip_connection"]
    with torch.no_grad():
        torch.testing.assert_close(tc(x), want, rtol=1e-5, atol=1e-5)
