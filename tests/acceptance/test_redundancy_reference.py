"""Issue 8 on the trained reference model: rankings, drops and real skipping."""

from __future__ import annotations

import pytest

from interp.redundancy import Module, ablated, heldout_loss, importance, load_tokens, skip_matches_ablation

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokens(reference_model):
    return load_tokens(reference_model, "reference", ctx_len=64, n=24, seed=5)


def test_reference_rankings_do_not_depend_on_batch_size(reference_model, tokens):
    a = importance(reference_model, tokens[:12], batch_size=12)
    b = importance(reference_model, tokens[:12], batch_size=5)
    for kinds in (("attn",), ("mlp",), ("block",), ("attn", "mlp")):
        assert a.ranking(kinds) == b.ranking(kinds)
        assert a.ranking(kinds, "output") == b.ranking(kinds, "output")
    assert a.attn == pytest.approx(b.attn, abs=1e-9)


def test_most_redundant_attention_layer_costs_less_than_the_least(reference_model, tokens):
    imp = importance(reference_model, tokens[:12])
    order = imp.ranking(("attn",))
    losses = {}
    for module in (order[0], order[-1]):
        with ablated(reference_model, [module]):
            losses[module] = heldout_loss(reference_model, tokens[12:])
    assert losses[order[0]] < losses[order[-1]]


@pytest.mark.parametrize("kind", ["attn", "mlp", "block"])
def test_really_skipping_matches_zero_ablation_on_the_reference_model(reference_model, tokens, kind):
    modules = [Module(kind, layer) for layer in (1, 3)]
    assert skip_matches_ablation(reference_model, modules, tokens[:2]) < 1e-4


def test_task_metrics_run_under_the_drop_hooks(reference_model):
    from interp.reference.tasks import evaluate

    intact = evaluate(reference_model, n_prompts=32)
    with ablated(reference_model, [Module("attn", layer) for layer in range(reference_model.cfg.n_layers)]):
        no_attention = evaluate(reference_model, n_prompts=32)
    assert intact.induction_repeat_acc > 0.8
    assert no_attention.induction_repeat_acc < 0.5  # copying needs attention
