"""GPT-2 small through interp.load_model.

The mechanics run on a GPT-2-small-shaped checkpoint with random weights on every run (and on
the real weights when they are present); the published loss needs the real weights (marked
``gpt2``, skipped when they are absent).
"""

from __future__ import annotations

import pytest
import torch


def test_gpt2_shape(gpt2_like):
    cfg = gpt2_like.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.d_mlp, cfg.d_vocab, cfg.n_ctx) == (12, 768, 3072, 50257, 1024)


def test_gpt2_has_every_site(gpt2_like):
    from interp.hooks import all_sites, resolve

    fires = {site for site, names in all_sites(gpt2_like).items() if names}
    assert fires == {"resid_pre", "ln1_scale", "ln1_normalized", "q", "k", "v", "attn_scores", "pattern", "z", "attn_out",
                     "resid_mid", "ln2_scale", "ln2_normalized", "pre", "post", "mlp_out", "resid_post"}
    for site in fires:
        assert len(resolve(gpt2_like, site)) == 12


@pytest.mark.slow
def test_gpt2_shaped_loss_equals_the_transformers_model(gpt2_shaped_dir, gpt2_shaped_model):
    """Loading converts and processes the checkpoint without changing its next-token loss."""
    from transformers import AutoModelForCausalLM

    tokens = gpt2_shaped_model.to_tokens("Hello world! The red fox chased the blue owl over the hill.")
    hf = AutoModelForCausalLM.from_pretrained(gpt2_shaped_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = hf(tokens, labels=tokens).loss.item()
        loss = gpt2_shaped_model(tokens, return_type="loss").item()
    assert loss == pytest.approx(expected, abs=1e-4)


@pytest.mark.gpt2
def test_gpt2_loss_on_hello_world_matches_transformer_lens(gpt2_model):
    with torch.no_grad():
        loss = gpt2_model("Hello world!", return_type="loss").item()
    assert abs(loss - 5.3319) <= 1e-3, loss
