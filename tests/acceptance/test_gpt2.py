"""GPT-2 small through interp.load_model (skipped when its weights are not on this machine)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpt2


def test_gpt2_shape(gpt2_model):
    cfg = gpt2_model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.d_mlp, cfg.d_vocab) == (12, 768, 3072, 50257)


def test_gpt2_loss_on_hello_world_matches_transformer_lens(gpt2_model):
    with torch.no_grad():
        loss = gpt2_model("Hello world!", return_type="loss").item()
    assert abs(loss - 5.3319) <= 1e-3, loss


def test_gpt2_has_every_site(gpt2_model):
    from interp.hooks import all_sites, resolve

    fires = {site for site, names in all_sites(gpt2_model).items() if names}
    assert fires == {"resid_pre", "ln1_scale", "ln1_normalized", "q", "k", "v", "attn_scores", "pattern", "z", "attn_out",
                     "resid_mid", "ln2_scale", "ln2_normalized", "pre", "post", "mlp_out", "resid_post"}
    for site in fires:
        assert len(resolve(gpt2_model, site)) == 12
