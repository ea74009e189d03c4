"""The reference corpus: deterministic, in-vocabulary, and true to its planted mechanisms."""

from __future__ import annotations

import pytest

from interp.reference import vocab as V
from interp.reference.corpus import DEFAULT_MIXTURE, CorpusGenerator, World


def _docs(seed: int, n: int = 400):
    gen = CorpusGenerator(seed=seed)
    return [gen.document() for _ in range(n)]


def test_same_seed_same_documents_and_other_seed_differs():
    a, b, c = _docs(1), _docs(1), _docs(2)
    assert [d.tokens for d in a] == [d.tokens for d in b]
    assert [d.tokens for d in a] != [d.tokens for d in c]


def test_every_token_is_in_the_vocabulary_and_labels_align():
    vocab = set(V.all_tokens())
    for doc in _docs(3):
        assert len(doc.tokens) == len(doc.labels)
        assert set(doc.tokens) <= vocab, set(doc.tokens) - vocab


def test_all_five_task_families_occur_in_their_proportions():
    docs = _docs(4, 4000)
    for task, weight in DEFAULT_MIXTURE.items():
        share = sum(d.task == task for d in docs) / len(docs)
        assert abs(share - weight) < 0.03, (task, share)


def test_greater_than_second_year_is_always_larger():
    for doc in _docs(5, 2000):
        if doc.task != "greater_than":
            continue
        years = [int(t) for t, label in zip(doc.tokens, doc.labels) if label == "year"]
        centuries = [t for t, label in zip(doc.tokens, doc.labels) if label == "century"]
        assert len(years) == 2 and years[1] > years[0]
        assert centuries[0] == centuries[1] and centuries[0].startswith(V.SPACE)


def test_world_is_a_pair_of_bijections_with_enough_subjects():
    world = World.from_seed()
    assert len(world.born_in) >= 50 and len(world.works_as) >= 50
    assert len(set(world.born_in.values())) == len(world.born_in)
    assert len(set(world.works_as.values())) == len(world.works_as)


def test_fact_documents_state_the_worlds_facts():
    world = World.from_seed()
    for doc in _docs(6, 2000):
        if doc.task != "facts":
            continue
        words = [t.lstrip(V.SPACE) for t in doc.tokens]
        subject = words[0]
        if "born" in words:
            assert words[words.index("in") + 1] == world.born_in[subject]
        if "works" in words:
            assert words[words.index("a") + 1] == world.works_as[subject]


def test_fsm_has_twenty_states_and_traces_follow_its_edges():
    world = World.from_seed()
    assert len(world.fsm) >= 20
    assert all(2 <= len(out) <= 4 and state not in out for state, out in world.fsm.items())
    seen = 0
    for doc in _docs(7, 2000):
        if doc.task != "fsm":
            continue
        states = [t.lstrip(V.SPACE) for t, label in zip(doc.tokens, doc.labels) if label == "fsm_state"]
        for here, there in zip(states, states[1:]):
            assert there in world.fsm[here]
        seen += 1
    assert seen > 50


def test_induction_documents_repeat_their_segment():
    for doc in _docs(8, 2000):
        if doc.task != "induction":
            continue
        first = [t for t, label in zip(doc.tokens, doc.labels) if label == "induction_first"]
        repeat = [t for t, label in zip(doc.tokens, doc.labels) if label == "induction_repeat"]
        assert first == repeat and len(first) >= 6


def test_prose_uses_the_semantic_classes():
    labels = {label for doc in _docs(9, 2000) if doc.task == "prose" for label in doc.labels if label}
    assert {"colour", "animal", "name", "number", "place"} <= labels


def test_unknown_task_family_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="choose from"):
        CorpusGenerator(mixture={"poetry": 1.0})
