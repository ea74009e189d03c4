"""The fused capture forward equals transformer-lens' hooks, and falls back where it must."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.cache import CacheConfig, StreamingActivations, cache_activations
from interp.cache.fused import FUSED_BLOCK_HOOKS, fused_capture, fused_unsupported
from interp.cache.source import capture_forward
from interp.hooks import opened


def gpt2_like(act_fn: str = "gelu_new", normalization_type: str = "LN", **overrides) -> HookedTransformer:
    """A small random model whose LayerNorm weights and every bias are non-trivial."""
    cfg = HookedTransformerConfig(
        n_layers=3, d_model=24, d_mlp=48, n_heads=3, d_head=8, d_vocab=40, n_ctx=16,
        act_fn=act_fn, normalization_type=normalization_type, seed=3, device="cpu", **overrides,
    )
    model = HookedTransformer(cfg)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith((".w", ".b")) or ".b_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3 + (1.0 if name.endswith(".w") else 0.0))
    return model.eval()


def all_hooks(model) -> list[str]:
    names = ["hook_embed", "hook_pos_embed"]
    return names + [f"blocks.{layer}.{suffix}" for layer in range(model.cfg.n_layers) for suffix in FUSED_BLOCK_HOOKS]


def assert_matches_transformer_lens(model, tokens: torch.Tensor, names: list[str]) -> None:
    """With fresh buffers and with a reused workspace (run twice: the second reuses it).
    transformer-lens computes ``hook_mlp_in`` only with ``use_hook_mlp_in`` (turned on for it here);
    the fused forward emits it without the flag."""
    with opened(model, names):
        _, cache = model.run_with_cache(tokens, names_filter=names)
    assert not model.cfg.use_hook_mlp_in
    workspace: dict[str, torch.Tensor] = {}
    for space in (None, workspace, workspace):
        fused: dict[str, torch.Tensor] = {}
        fused_capture(model, tokens, names, lambda name, act, into=fused: into.__setitem__(name, act.clone()), space)
        assert set(fused) == set(names)
        for name in names:
            want = cache[name]
            assert fused[name].shape == want.shape, name
            scale = want.abs().max().item() + 1e-6
            err = (fused[name] - want).abs().max().item()
            assert err <= 1e-5 * scale, f"{name}: max difference {err:.2e} at scale {scale:.2e}"
    assert set(workspace) == {"qkv", "pre", "post"}


@pytest.mark.parametrize("act_fn", ["gelu_new", "gelu", "relu", "silu"])
@pytest.mark.parametrize("normalization_type", ["LN", "LNPre"])
def test_fused_equals_transformer_lens_at_every_hook(act_fn, normalization_type):
    model = gpt2_like(act_fn, normalization_type)
    assert fused_unsupported(model, all_hooks(model)) is None
    tokens = torch.randint(0, 40, (5, 16), generator=torch.Generator().manual_seed(0))
    assert_matches_transformer_lens(model, tokens, all_hooks(model))


def test_fused_equals_transformer_lens_on_the_reference_model(reference_model):
    names = all_hooks(reference_model)
    assert fused_unsupported(reference_model, names) is None
    tokens = torch.randint(0, reference_model.cfg.d_vocab, (4, 64), generator=torch.Generator().manual_seed(1))
    assert_matches_transformer_lens(reference_model, tokens, names)


def test_fused_emits_only_what_is_asked_and_stops_there():
    model = gpt2_like()
    model.blocks[2] = torch.nn.Module()  # any use of the last block would raise AttributeError
    seen: list[str] = []
    fused_capture(model, torch.zeros(1, 4, dtype=torch.long), ["blocks.1.hook_mlp_out", "blocks.0.attn.hook_z"],
                  lambda name, act: seen.append(name))
    assert seen == ["blocks.0.attn.hook_z", "blocks.1.hook_mlp_out"]


@pytest.mark.parametrize(
    ("overrides", "hooks", "reason"),
    [
        ({"positional_embedding_type": "rotary", "rotary_dim": 8}, [], "positional_embedding_type"),
        ({"normalization_type": "RMS"}, [], "normalization_type"),
        ({"act_fn": "solu_ln"}, [], "act_fn"),
        ({"parallel_attn_mlp": True}, [], "parallel_attn_mlp"),
        ({"n_key_value_heads": 1}, [], "n_key_value_heads"),
        ({}, ["blocks.0.attn.hook_pattern"], "hook_pattern"),
        ({}, ["blocks.0.attn.hook_q"], "hook_q"),
        ({}, ["ln_final.hook_normalized"], "ln_final"),
    ],
)
def test_unsupported_models_and_hooks_say_why(overrides, hooks, reason):
    base = {"act_fn": overrides.pop("act_fn", "gelu_new"), "normalization_type": overrides.pop("normalization_type", "LN")}
    model = gpt2_like(**base, **overrides)
    why = fused_unsupported(model, hooks or ["blocks.0.hook_mlp_out"])
    assert why is not None and reason in why


def test_a_patched_model_runs_its_own_forward():
    """A hook already on the model (an ablation) must act: capture falls back to transformer-lens."""
    model = gpt2_like()
    names = ["blocks.1.hook_mlp_out"]
    tokens = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(2))

    def run(fused: bool) -> torch.Tensor:
        got = {}
        with capture_forward(model, names, lambda name, act: got.__setitem__(name, act.clone()), fused=fused) as forward:
            forward(tokens)
        return got[names[0]]

    clean = run(fused=True)
    model.blocks[0].hook_mlp_out.add_hook(lambda act, hook: act * 0.0)
    try:
        assert "forward hooks" in fused_unsupported(model, names)
        ablated = run(fused=True)
        _, cache = model.run_with_cache(tokens, names_filter=names)
    finally:
        model.reset_hooks()
    assert not torch.allclose(clean, ablated)
    torch.testing.assert_close(ablated, cache[names[0]])
    assert fused_unsupported(model, names) is None


def test_streaming_and_store_agree_fused_or_not(tmp_path):
    model = gpt2_like()
    names = ["blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_in", "blocks.2.hook_resid_post"]
    tokens = torch.randint(0, 40, (6, 16), generator=torch.Generator().manual_seed(5))
    fused, plain = (
        next(iter(StreamingActivations(model, names, tokens, forward_batch=3, fused=f).batches(96, seed=1)))
        for f in (True, False)
    )
    torch.testing.assert_close(fused.tokens, plain.tokens)
    for name in names:
        torch.testing.assert_close(fused.acts[name], plain.acts[name], rtol=1e-5, atol=1e-5)
    store = cache_activations(model, names, tokens, tmp_path / "s", CacheConfig(batch_size=3, progress=False, fused=True))
    assert store.manifest["forward"] == "fused"
    store_plain = cache_activations(model, names, tokens, tmp_path / "p", CacheConfig(batch_size=3, progress=False))
    assert store_plain.manifest["forward"] == "transformer-lens"
    for name in names:
        torch.testing.assert_close(store.read_all().acts[name], store_plain.read_all().acts[name], rtol=1e-5, atol=1e-5)
    # hook_mlp_in (the flag turned on for the transformer-lens run only) is the residual entering the MLP
    torch.testing.assert_close(store_plain.read_all().acts["blocks.1.hook_mlp_in"],
                               cache_activations(model, ["blocks.1.hook_resid_mid"], tokens, tmp_path / "r",
                                                 CacheConfig(batch_size=3, progress=False)).read_all().acts["blocks.1.hook_resid_mid"])
    assert not model.cfg.use_hook_mlp_in
