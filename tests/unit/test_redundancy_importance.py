"""Importance (1 - cosine) on planted models whose answer is known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from interp.errors import RedundancyError
from interp.planted import noop_model
from interp.redundancy import Module, ablated, heldout_loss, importance, skip_matches_ablation, spearman

pytestmark = pytest.mark.usefixtures("one_thread")



def _tokens(n: int = 12, pos: int = 16, d_vocab: int = 24) -> torch.Tensor:
    return torch.randint(0, d_vocab, (n, pos), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ["attn", "mlp"])
def test_exact_noop_scores_zero_and_dropping_it_keeps_the_loss(kind):
    model = noop_model(kind, layer=1, mode="zero")
    tokens = _tokens()
    imp = importance(model, tokens)
    assert abs(imp.score(Module(kind, 1))) < 1e-12
    others = [imp.score(Module(k, layer)) for k in ("attn", "mlp") for layer in range(3) if (k, layer) != (kind, 1)]
    assert min(others) > 1e-3  # the random modules do change the residual
    assert imp.ranking(("attn", "mlp"))[0] == Module(kind, 1)
    base = heldout_loss(model, tokens)
    with ablated(model, [Module(kind, 1)]):
        assert heldout_loss(model, tokens) == pytest.approx(base, abs=1e-9)
    with ablated(model, [Module("block", 1)]):  # sanity: dropping a real module does change it
        assert abs(heldout_loss(model, tokens) - base) > 1e-4


@pytest.mark.parametrize("kind", ["attn", "mlp"])
def test_parallel_module_scores_zero_although_dropping_it_changes_the_loss(kind):
    """The blind spot: a module that only rescales the residual looks redundant."""
    model = noop_model(kind, layer=1, mode="parallel", scale=0.5)
    tokens = _tokens()
    imp = importance(model, tokens)
    assert abs(imp.score(Module(kind, 1))) < 1e-12
    with torch.no_grad():
        base = model(tokens)
        with ablated(model, [Module(kind, 1)]):
            dropped = model(tokens)
    assert (dropped - base).abs().max() > 1e-2


def test_output_variant_scores_a_zero_output_as_maximally_important():
    """cos(x, 0) is 0 by torch's (and LLM-Drop's) convention, so 1 - cos = 1: documented pitfall."""
    imp = importance(noop_model("attn", layer=1, mode="zero"), _tokens())
    assert imp.score(Module("attn", 1), "output") == pytest.approx(1.0, abs=1e-12)


def test_importance_and_rankings_do_not_depend_on_batch_size():
    model = noop_model("mlp", layer=2, mode="zero")
    tokens = _tokens(n=10)
    results = [importance(model, tokens, batch_size=b) for b in (1, 3, 4, None)]
    for other in results[1:]:
        for key in ("attn", "mlp", "block", "attn_output", "mlp_output", "block_output"):
            assert getattr(other, key) == pytest.approx(getattr(results[0], key), abs=1e-10)
        for kinds in (("attn",), ("mlp",), ("block",), ("attn", "mlp")):
            for metric in ("residual", "output"):
                assert other.ranking(kinds, metric) == results[0].ranking(kinds, metric)
        assert other.n_tokens == results[0].n_tokens == 160


def test_bos_can_be_left_out():
    model = noop_model("attn", layer=1)
    tokens = _tokens()
    tokens[:, 0] = 5
    with_bos = importance(model, tokens, include_bos=True)
    without = importance(model, tokens, include_bos=False, bos_token_id=5)
    assert with_bos.n_tokens == tokens.numel()
    assert without.n_tokens == int((tokens != 5).sum())
    assert without.attn[0] != pytest.approx(with_bos.attn[0], abs=1e-6)
    with pytest.raises(ValueError, match="bos_token_id"):
        importance(model, tokens, include_bos=False)
    with pytest.raises(ValueError, match="every token is BOS"):
        importance(model, torch.full((2, 4), 5), include_bos=False, bos_token_id=5)


def test_bad_inputs_are_named():
    model = noop_model("attn", layer=1)
    with pytest.raises(ValueError, match="shape"):
        importance(model, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        importance(model, _tokens(), batch_size=0)
    with pytest.raises(ValueError, match="module name"):
        Module.parse("attention.1")
    assert Module.parse("mlp.3") == Module("mlp", 3)


def test_attention_only_model_is_refused():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=8, d_vocab=10, attn_only=True, act_fn="relu")
    with pytest.raises(RedundancyError, match="attention-only"):
        importance(HookedTransformer(cfg), torch.zeros(1, 4, dtype=torch.long))


def test_spearman_matches_the_definition():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    # ties get average ranks: ranks x = [1.5, 1.5, 3, 4], y = [1, 2, 3, 4]
    assert spearman([5, 5, 6, 7], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = torch.randn(20).tolist(), torch.randn(20).tolist()
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)


def test_post_norm_blocks_compare_the_output_with_the_residual_input():
    """OLMo 2's ln1/ln2 normalise a sublayer's output, so its input is the raw residual stream."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=16, d_mlp=32, n_heads=2, d_head=8, n_ctx=16, d_vocab=30, act_fn="silu",
                                  normalization_type="RMS", gated_mlp=True, positional_embedding_type="rotary",
                                  original_architecture="Olmo2ForCausalLM", seed=0, device="cpu")
    model = HookedTransformer(cfg).eval()
    tokens = _tokens(n=4, pos=12, d_vocab=30)
    imp = importance(model, tokens)
    _, cache = model.run_with_cache(tokens)
    pre, attn_out = cache["blocks.1.hook_resid_pre"].double(), cache["blocks.1.hook_attn_out"].double()
    by_hand = 1 - torch.nn.functional.cosine_similarity(pre, attn_out, dim=-1).mean()
    assert imp.score(Module("attn", 1), "output") == pytest.approx(float(by_hand), abs=1e-9)
    for kind in ("attn", "mlp", "block"):
        assert skip_matches_ablation(model, [Module(kind, 0)], tokens) < 1e-5
