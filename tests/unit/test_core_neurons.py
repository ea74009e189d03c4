"""CoreInfer core neurons on hand-made activations."""

from __future__ import annotations

import pytest
import torch

from interp.sparsity import CoreSimilarity, core_similarity, jaccard, related_sentences, sentence_core, token_core


def test_token_core_keeps_the_top_alpha_of_positive_activations():
    acts = torch.tensor([[5.0, 4.0, 3.0, 2.0, -1.0, 0.0], [-1.0, -2.0, 0.5, -3.0, -4.0, -5.0]])
    core = token_core(acts, alpha=0.5)
    assert core[0].tolist() == [True, True, False, False, False, False]
    assert core[1].tolist() == [False, False, True, False, False, False]


def test_sentence_core_keeps_the_most_frequent():
    acts = torch.tensor([[3.0, 1.0, 0.0, 0.0], [3.0, 0.0, 1.0, 0.0], [0.0, 0.0, 2.0, 3.0]])
    # alpha 0.5: token cores {0}, {0}, {3}; neuron 0 twice, neuron 3 once
    assert sentence_core(acts, alpha=0.5, beta=0.5) == {0}
    assert sentence_core(acts, alpha=0.5, beta=1.0) == {0, 3}
    assert jaccard({0, 1}, {1, 2}) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        sentence_core(acts, alpha=0.5, beta=0.0)


def test_related_sentences_share_a_template():
    groups = related_sentences(n_templates=3, per_template=4, seed=1)
    assert [len(g) for g in groups] == [4, 4, 4]
    from interp.reference.corpus import PROSE_TEMPLATES

    for template, group in zip(PROSE_TEMPLATES, groups):
        fixed = [(i, w) for i, w in enumerate(template.replace(" .", ".").split()) if "{" not in w]
        for sentence in group:
            words = sentence.split()
            assert len(words) == len(template.split()) - (1 if " ." in template else 0)
            assert all(words[i] == w for i, w in fixed)


def test_core_similarity_runs_on_a_tiny_model(tmp_path):
    from interp.planted import density_model

    model, _ = density_model(d_vocab=20, d_mlp=8)
    groups = [[torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 4])], [torch.tensor([0, 15, 16, 17]), torch.tensor([0, 18, 19, 17])]]
    result = core_similarity(model, groups, alpha=1.0, beta=1.0)
    assert result.n_sentences == 4 and result.layers == [0]
    # with alpha = beta = 1 the core set is every neuron positive on some token; low tokens fire many neurons
    assert 0.0 <= result.unrelated[0] <= 1.0 and result.related[0] >= result.unrelated[0]
    assert CoreSimilarity.load(result.save(tmp_path / "c.json")) == result
    assert "Jaccard related" in result.summary() and f"{result.related[0]:.3f}" in result.summary()
    with pytest.raises(ValueError):
        core_similarity(model, groups[:1])
