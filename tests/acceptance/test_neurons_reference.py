"""Issue 7 on the reference model: semantic-class neurons exist well above chance, and
clamping the strongest colour neuron raises its decoded tokens more than random neurons do."""

from __future__ import annotations

from math import comb

import pytest

from interp.data import token_batches
from interp.neurons import clamp_test, classify, decode, semantic_classes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def table(reference_model):
    return decode(reference_model, k=10)


def test_every_neuron_decodes_and_class_neurons_exceed_chance(table, reference_model):
    assert len(table) == reference_model.cfg.n_layers * reference_model.cfg.d_mlp == 2048
    classes = semantic_classes(tokens=True)
    report = classify(table, classes, top=3, exact=True)
    vocab = set(table.vocab)
    for cls in ("colour", "animal", "place", "job"):
        chance = len(table) * comb(len(set(classes[cls]) & vocab), 3) / comb(len(table.vocab), 3)
        assert report.counts[cls] >= max(5, 3 * chance), (cls, report.counts[cls], chance)


def test_clamping_the_strongest_colour_neuron_beats_random_neurons(table, reference_model):
    report = classify(table, semantic_classes(tokens=True), top=3, exact=True)
    best = report.strongest("colour")
    row = table.row_of(best.layer, best.neuron)
    prompts = next(iter(token_batches("reference", reference_model.tokenizer, ctx_len=32, batch_size=4, seed=1)))
    result = clamp_test(reference_model, best.layer, best.neuron, prompts, table.top_ids[row, :3].tolist(), n_random=10)
    assert result.mean_delta > 0 and result.clamped_prob > result.baseline_prob
    assert result.percentile >= 0.9
