"""GPT-2 small's shape: every neuron decodes, and transformer-lens' processed weights rank tokens
the same as projecting through the unprocessed ln_final by hand with its bias set to zero.

Both run on a GPT-2-small-shaped checkpoint with random weights on every run, and on the real
weights when they are present (``gpt2_like``). Rankings are compared up to float ties.
"""

from __future__ import annotations

import pytest
from support.ranking import assert_same_topk, scorer

from interp.neurons import decode, topk_scores

pytestmark = pytest.mark.slow


def test_gpt2_has_36864_neurons_and_decodes_them_all(gpt2_like):
    table = decode(gpt2_like, k=10)
    assert len(table) == 36_864 == gpt2_like.cfg.n_layers * gpt2_like.cfg.d_mlp
    assert table.top_ids.shape == (36_864, 10) and table.bottom_ids.shape == (36_864, 10)
    assert int(table.top_ids.max()) < 50_257


@pytest.fixture(scope="module")
def unprocessed(gpt2_like_spec):
    from interp.models import load_model

    return load_model(gpt2_like_spec, device="cpu", fold_ln=False, center_writing_weights=False, center_unembed=False)


@pytest.mark.parametrize("layer", [0, 11])
def test_processed_weights_rank_like_ln_final_by_hand(gpt2_like, unprocessed, layer):
    raw = unprocessed
    assert raw.cfg.normalization_type == "LN"
    vectors = raw.blocks[layer].mlp.W_out.detach()
    centred = vectors - vectors.mean(dim=1, keepdim=True)
    normed = centred / centred.pow(2).mean(dim=1, keepdim=True).add(raw.cfg.eps).sqrt()
    by_hand = normed * raw.ln_final.w.detach()  # ln_final with its bias set to zero
    W_U = raw.W_U.detach()
    hand_top_values, hand_top, hand_bottom_values, hand_bottom = topk_scores(by_hand, W_U, k=10, method="exact")
    table = decode(gpt2_like, layers=layer, k=10)
    score = scorer(by_hand, W_U)
    assert_same_topk(table.top_ids, hand_top_values.double(), score)
    assert_same_topk(table.bottom_ids, hand_bottom_values.double(), score, largest=False)
    # all but float ties agree exactly: at most a few rows in a thousand differ
    assert (table.top_ids != hand_top).any(dim=1).float().mean() < 0.01
    assert (table.bottom_ids != hand_bottom).any(dim=1).float().mean() < 0.01

