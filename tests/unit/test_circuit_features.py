"""Feature contexts keep their spaces and mark the token where the feature fires."""

from __future__ import annotations

import pytest

from interp.circuits.features import context_pieces, top_contexts
from interp.circuits.planted import A, planted_circuit


@pytest.fixture(scope="module")
def reference(reference_model):
    return reference_model


def test_context_pieces_keep_the_spaces_between_words(reference):
    ids = reference.to_tokens("The strike started in the year 1345 to 13")[0].tolist()
    before, token, after = context_pieces(reference, ids[1:7], ids[7], ids[8:10])
    assert before == "The strike started in the year"
    assert token == " 13"                      # the firing token with its own leading space
    assert after == "45 to"                    # "45" continues the word "1345": no space
    whole = reference.tokenizer.decode(ids[1:10])
    assert before + token + after == whole


def test_context_pieces_without_a_tokenizer_show_ids():
    pc = planted_circuit()
    assert context_pieces(pc.model, [2, 1], 3, [4]) == ("<2> <1>", "<3>", "<4>")


def test_top_contexts_mark_the_firing_token():
    """Planted layer-0 feature 0 fires on token A and nowhere else."""
    pc = planted_circuit()
    rows = top_contexts(pc.model, pc.transcoders, [(0, 0)], pc.prompt[None], k=3)[(0, 0)]
    assert rows and all(r["token"] == f"<{A}>" for r in rows)
    assert rows[0]["before"] == "<2>" and rows[0]["after"].startswith("<3>")
    assert rows[0]["value"] > 0
