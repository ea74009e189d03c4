"""Semantic-class neurons and model comparison, on hand-built tables and planted models."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from interp.neurons import ClassReport, ModelComparison, NeuronTable, SemanticClasses, classify, compare, decode, semantic_classes
from interp.planted import neuron_model


def _table(top_ids):
    vocab = ["<bos>", "▁red", "▁blue", "▁fox", "▁dog", "17", "▁17", "▁the"]
    top_ids = torch.tensor(top_ids)
    n, k = top_ids.shape
    values = torch.arange(k, 0, -1).float().expand(n, k).clone()
    return NeuronTable("out", k, "toy", vocab, torch.zeros(n, dtype=torch.long), torch.arange(n),
                       top_ids, values, top_ids.flip(1), -values)


def test_classify_counts_neurons_whose_top_tokens_share_a_class():
    table = _table([[1, 2, 7], [3, 4, 1], [2, 1, 3], [5, 6, 7]])
    classes = {"colour": ["red", "blue"], "animal": ["fox", "dog"]}
    two = classify(table, classes, top=2)
    assert two.counts == {"colour": 2, "animal": 1}
    assert {n.neuron for n in two.neurons["colour"]} == {0, 2}
    three = classify(table, classes, top=3)
    assert three.counts == {"colour": 0, "animal": 0}
    with pytest.raises(KeyError):
        three.strongest("colour")


def test_exact_matching_keeps_year_digits_apart_from_centuries():
    table = _table([[5, 7, 1], [6, 7, 1]])
    assert classify(table, {"year": ["17"]}, top=1, exact=True).counts == {"year": 1}
    assert classify(table, {"year": ["17"]}, top=1).counts == {"year": 2}
    assert set(semantic_classes()) >= {"colour", "animal", "name", "number", "place", "job", "subject", "fsm_state", "year"}


def test_classes_round_trip_and_summary(tmp_path):
    classes = classify(_table([[1, 2, 7], [2, 1, 3]]), {"colour": ["red", "blue"]}, top=2)
    assert isinstance(classes, SemanticClasses) and ClassReport is SemanticClasses  # the old name still works
    loaded = SemanticClasses.load(classes.save(tmp_path / "c.json"))
    assert loaded == classes and isinstance(loaded.neurons["colour"][0], type(classes.neurons["colour"][0]))
    assert SemanticClasses.load(classes.write(tmp_path / "out")["json"]) == classes
    assert (tmp_path / "out" / "classes.html").is_file()
    text = classes.summary()
    assert "2 of 2 neurons" in text and "colour" in text and "L0N" in text
    with pytest.warns(DeprecationWarning, match="summary"):
        assert classes.table() == text  # the old name, kept as an alias


def test_classes_written_before_the_result_base_still_load(tmp_path):
    old = {"top": 2, "side": "out", "counts": {"colour": 1}, "n_neurons": 3,
           "neurons": {"colour": [{"layer": 0, "neuron": 2, "cls": "colour", "tokens": ["▁red"], "strength": 1.5}]}}
    (tmp_path / "classes.json").write_text(json.dumps(old))
    loaded = SemanticClasses.load(tmp_path)
    assert loaded.strongest("colour").neuron == 2 and loaded.n_class_neurons == 1


def test_compare_identical_and_changed_models():
    model, p = neuron_model()
    a = decode(model, k=3)
    assert compare(a, decode(copy.deepcopy(model), k=3)).unchanged == [1.0]
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.blocks[0].mlp.W_out[p.neuron] = 4.0 * other.embed.W_E[2]
    result = compare(a, decode(other, k=3))
    # exactly one neuron had a planted (unique) top token, and it changed
    row = a.row_of(0, p.neuron)
    assert decode(other, k=3).top_ids[row, 0] == 2
    assert result.unchanged[0] < 1.0


def test_comparison_round_trip_and_summary(tmp_path):
    model, p = neuron_model()
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.blocks[0].mlp.W_out[p.neuron] = 4.0 * other.embed.W_E[2]
    result = compare(decode(model, k=3), decode(other, k=3))
    assert ModelComparison.load(result.save(tmp_path / "m.json")) == result
    assert f"{result.unchanged[0]:.3f}" in result.summary() and "layer" in result.summary()


def test_compare_rejects_mismatched_tables():
    model, _ = neuron_model()
    with pytest.raises(ValueError, match="same side"):
        compare(decode(model, side="out"), decode(model, side="in"))
