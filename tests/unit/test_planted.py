"""The planted-mechanism models do exactly what they claim."""

from __future__ import annotations

import pytest
import torch

from interp.planted import density_model, neuron_model, noop_model, orthonormal_embeddings, uniform_token_stream


def test_orthonormal_embeddings_are_orthonormal_and_mean_zero():
    e = orthonormal_embeddings(10, 16)
    assert torch.allclose(e @ e.T, torch.eye(10), atol=1e-6)
    assert torch.allclose(e.mean(dim=1), torch.zeros(10), atol=1e-7)
    with pytest.raises(ValueError, match="d_model >= d_vocab"):
        orthonormal_embeddings(16, 16)


def test_planted_neuron_fires_only_on_its_read_token():
    model, planted = neuron_model(read_token=3, write_token=7, neuron=5)
    tokens = torch.arange(model.cfg.d_vocab)[None]
    _, cache = model.run_with_cache(tokens)
    post = cache["blocks.0.mlp.hook_post"][0]
    assert post[3, 5] > 0.99
    others = torch.ones(model.cfg.d_vocab, dtype=torch.bool)
    others[3] = False
    assert post[others].abs().max() < 1e-5
    assert post[:, torch.arange(model.cfg.d_mlp) != 5].abs().max() < 1e-5


def test_planted_neuron_writes_its_write_token():
    model, planted = neuron_model(read_token=3, write_token=7)
    logits = model(torch.tensor([[3, 4]]))[0]
    assert logits[0].argmax().item() == 7  # token 3 -> the neuron -> token 7
    assert logits[1].argmax().item() == 4  # any other token just predicts itself
    with pytest.raises(ValueError):
        neuron_model(read_token=2, write_token=2)


def test_noop_attention_leaves_the_residual_exactly_unchanged():
    model = noop_model("attn", layer=1)
    _, cache = model.run_with_cache(torch.randint(0, 24, (2, 8)))
    assert torch.equal(cache["blocks.1.hook_resid_mid"], cache["blocks.1.hook_resid_pre"])
    assert not torch.equal(cache["blocks.0.hook_resid_mid"], cache["blocks.0.hook_resid_pre"])


def test_noop_mlp_leaves_the_residual_exactly_unchanged():
    model = noop_model("mlp", layer=2)
    _, cache = model.run_with_cache(torch.randint(0, 24, (2, 8)))
    assert torch.equal(cache["blocks.2.hook_resid_post"], cache["blocks.2.hook_resid_mid"])


def test_parallel_module_only_rescales_the_residual():
    model = noop_model("attn", layer=0, mode="parallel", scale=0.5)
    _, cache = model.run_with_cache(torch.randint(0, 24, (2, 8)))
    pre, mid = cache["blocks.0.hook_resid_pre"], cache["blocks.0.hook_resid_mid"]
    assert torch.allclose(mid, 1.5 * pre, atol=1e-6)


def test_planted_density_is_exact_on_a_uniform_stream():
    model, expected = density_model(active_tokens=[0, 5, 10, 20, 1, 2, 3, 4], d_vocab=20)
    tokens = uniform_token_stream(20, repeats=8, ctx_len=16)
    _, cache = model.run_with_cache(tokens)
    post = cache["blocks.0.mlp.hook_post"].reshape(-1, 8)
    frequency = (post != 0).double().mean(0)
    assert torch.equal(frequency, expected)


def test_bad_planted_arguments_are_rejected():
    with pytest.raises(ValueError, match="kind"):
        noop_model("conv")
    with pytest.raises(ValueError, match="one count per neuron"):
        density_model(active_tokens=[1, 2], d_mlp=8)
