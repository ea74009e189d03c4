"""Dropping modules: zero-ablation, real skipping, drop orders and curves."""

from __future__ import annotations

import pytest
import torch

from interp.planted import noop_model
from interp.redundancy import (
    Module,
    ablated,
    drop_curve,
    drop_order,
    heldout_loss,
    importance,
    skip_matches_ablation,
    skipped,
)

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def model():
    return noop_model("attn", layer=1, mode="zero")


def _tokens(n: int = 8, pos: int = 16) -> torch.Tensor:
    return torch.randint(0, 24, (n, pos), generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize(
    "modules",
    [[Module("attn", 0)], [Module("mlp", 2)], [Module("block", 1)], [Module("attn", 0), Module("mlp", 0), Module("mlp", 2)]],
    ids=str,
)
def test_really_skipping_gives_the_zero_ablated_logits(model, modules):
    tokens = _tokens()
    assert skip_matches_ablation(model, modules, tokens) < 1e-6
    with torch.no_grad():
        intact = model(tokens)
        with skipped(model, modules):
            fast = model(tokens)
    assert (fast - intact).abs().max() > 1e-3  # the drop does something


def test_skipping_removes_the_computation_and_restores_it(model):
    blocks = list(model.blocks)
    attn, ln1 = model.blocks[0].attn, model.blocks[0].ln1
    with skipped(model, [Module("attn", 0), Module("block", 2)]):
        assert not any(p is attn.W_Q for p in model.parameters())
        assert model.blocks[2] is not blocks[2]
        assert sum(p.numel() for p in model.blocks[2].parameters()) == 0
    assert list(model.blocks) == blocks and model.blocks[0].attn is attn and model.blocks[0].ln1 is ln1
    with pytest.raises(RuntimeError, match="boom"):
        with skipped(model, [Module("mlp", 1)]):
            raise RuntimeError("boom")
    assert model.blocks[1].mlp is blocks[1].mlp


def test_ablation_hooks_are_scoped(model):
    tokens = _tokens()
    with torch.no_grad():
        before = model(tokens)
        with pytest.raises(RuntimeError):
            with ablated(model, [Module("mlp", 0)]):
                raise RuntimeError
        after = model(tokens)
    assert torch.equal(before, after)
    with pytest.raises(ValueError, match="out of range"):
        with ablated(model, [Module("attn", 7)]):
            pass


def test_block_drop_equals_dropping_its_attention_and_mlp(model):
    tokens = _tokens()
    with ablated(model, [Module("block", 2)]):
        block = heldout_loss(model, tokens)
    with ablated(model, [Module("attn", 2), Module("mlp", 2)]):
        both = heldout_loss(model, tokens)
    assert block == pytest.approx(both, abs=1e-12)


def test_heldout_loss_does_not_depend_on_batch_size(model):
    tokens = _tokens(n=7)
    losses = [heldout_loss(model, tokens, batch_size=b) for b in (1, 2, 7)]
    assert losses == pytest.approx([losses[0]] * 3, abs=1e-6)
    expected = torch.nn.functional.cross_entropy(model(tokens)[:, :-1].reshape(-1, 24), tokens[:, 1:].reshape(-1)).item()
    assert losses[0] == pytest.approx(expected, abs=1e-5)


def test_one_shot_order_is_the_importance_ranking_and_iterative_starts_the_same(model):
    tokens = _tokens()
    imp = importance(model, tokens)
    order, scores = drop_order(model, tokens, "joint", "one-shot")
    assert order == imp.ranking(("attn", "mlp")) and order[0] == Module("attn", 1)
    assert scores == sorted(scores)
    iterative, picked = drop_order(model, tokens, "joint", "iterative", max_drop=3)
    assert iterative[0] == order[0] and len(set(iterative)) == 3
    # the iterative second pick is the least important module once the first is ablated
    again = importance(model, tokens, dropped=iterative[:1])
    assert iterative[1] == again.ranking(("attn", "mlp"), exclude=iterative[:1])[0]
    assert picked[1] == pytest.approx(again.score(iterative[1]))
    with pytest.raises(ValueError, match="strategy"):
        drop_order(model, tokens, "heads")
    with pytest.raises(ValueError, match="schedule"):
        drop_order(model, tokens, "attn", "greedy")


def test_drop_curve_measures_every_prefix(model):
    tokens = _tokens()
    calls = []
    curve = drop_curve(
        model, tokens[:4], tokens[4:], "block", "one-shot", tasks=lambda m: calls.append(1) or {"loss": heldout_loss(m, tokens[4:])},
        timing_tokens=tokens[:2], timing_repeats=1,
    )
    assert [p.n_dropped for p in curve.points] == [0, 1, 2, 3] and len(calls) == 4
    assert curve.points[0].loss == pytest.approx(heldout_loss(model, tokens[4:]))
    for point in curve.points:
        assert point.tasks["loss"] == pytest.approx(point.loss)  # tasks run under the drop hooks
        assert point.skip_max_abs_diff < 1e-6 and point.speedup > 0
        assert point.perplexity == pytest.approx(torch.tensor(point.loss).exp().item(), rel=1e-6)
    assert curve.points[-1].dropped == curve.order
