"""GPT-2 small: every neuron decodes, and transformer-lens' processed weights rank tokens
the same as projecting through the unprocessed ln_final by hand with its bias set to zero."""

from __future__ import annotations

import pytest
import torch

from interp.neurons import decode, topk_scores

pytestmark = [pytest.mark.gpt2, pytest.mark.slow]


def test_gpt2_has_36864_neurons_and_decodes_them_all(gpt2_model):
    table = decode(gpt2_model, k=10)
    assert len(table) == 36_864 == gpt2_model.cfg.n_layers * gpt2_model.cfg.d_mlp
    assert table.top_ids.shape == (36_864, 10) and table.bottom_ids.shape == (36_864, 10)
    assert int(table.top_ids.max()) < 50_257


@pytest.mark.parametrize("layer", [0, 11])
def test_processed_weights_rank_like_ln_final_by_hand(gpt2_model, layer):
    from interp.models import load_model

    raw = load_model("gpt2", device="cpu", fold_ln=False, center_writing_weights=False, center_unembed=False)
    assert raw.cfg.normalization_type == "LN"
    vectors = raw.blocks[layer].mlp.W_out.detach()
    centred = vectors - vectors.mean(dim=1, keepdim=True)
    normed = centred / centred.pow(2).mean(dim=1, keepdim=True).add(raw.cfg.eps).sqrt()
    by_hand = normed * raw.ln_final.w.detach()  # ln_final with its bias set to zero
    _, hand_top, _, hand_bottom = topk_scores(by_hand, raw.W_U.detach(), k=10, method="exact")
    table = decode(gpt2_model, layers=layer, k=10)
    assert torch.equal(table.top_ids, hand_top)
    assert torch.equal(table.bottom_ids, hand_bottom)
