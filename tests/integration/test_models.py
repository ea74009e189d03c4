"""Model loading: a local Hugging Face checkpoint offline, GPT-2's helpful failure, bad specs."""

from __future__ import annotations

import time

import pytest
import torch

from interp.errors import ModelLoadError
from interp.models import gpt2_available, load_model, model_info


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
    """A tiny random GPT-2-style Hugging Face checkpoint with the reference tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.reference.tokenizer import build_tokenizer

    directory = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = build_tokenizer()
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=2, n_positions=64, n_ctx=64, vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    hf_model = GPT2LMHeadModel(config).eval()
    hf_model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory, hf_model


def test_local_hf_checkpoint_loads_offline_and_matches_hf_logits(hf_checkpoint, monkeypatch):
    directory, hf_model = hf_checkpoint
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_model(directory, device="cpu")
    tokens = model.to_tokens("Anna saw Rome. Ben met Clara in Oslo yesterday.")
    with torch.no_grad():
        expected = hf_model(tokens).logits
        got = model(tokens)
    # Centring the unembedding shifts every logit of a position by the same amount.
    assert torch.allclose(
        got - got.mean(-1, keepdim=True), expected - expected.mean(-1, keepdim=True), atol=1e-4
    )
    info = model_info(model)
    assert info.n_layers == 2 and info.d_model == 32 and info.d_mlp == 128


def test_unprocessed_local_checkpoint_equals_hf_exactly(hf_checkpoint):
    directory, hf_model = hf_checkpoint
    model = load_model(directory, device="cpu", fold_ln=False, center_writing_weights=False, center_unembed=False)
    tokens = model.to_tokens("The red fox chased the blue owl.")
    with torch.no_grad():
        assert torch.allclose(model(tokens), hf_model(tokens).logits, atol=1e-5)


def test_gpt2_without_weights_fails_fast_with_what_was_tried(hf_cache):
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        load_model("gpt2", device="cpu")
    elapsed = time.perf_counter() - start
    message = str(err.value)
    assert elapsed < 20, f"took {elapsed:.1f} s; it must not wait on network time-outs"
    assert "tried" in message and "Hugging Face cache" in message and "openai-community/gpt2" in message
    assert "INTERP_GPT2_PATH" in message and "HF_HOME" in message and "load_model('reference')" in message
    assert not gpt2_available()


def test_gpt2_path_variable_pointing_nowhere_is_reported(hf_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_GPT2_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="INTERP_GPT2_PATH=.*not a directory"):
        load_model("gpt2", device="cpu")


def test_gpt2_path_variable_names_the_checkpoint(hf_cache, hf_checkpoint, monkeypatch):
    directory, hf_model = hf_checkpoint
    monkeypatch.setenv("INTERP_GPT2_PATH", str(directory))
    assert gpt2_available()
    model = load_model("gpt2-small", device="cpu", center_unembed=False)
    tokens = model.to_tokens("Anna saw Rome.")
    with torch.no_grad():
        assert torch.allclose(model(tokens), hf_model(tokens).logits, atol=1e-4)


def test_unknown_spec_and_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown model 'gpt5'"):
        load_model("gpt5")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)
