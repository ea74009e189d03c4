"""Packing token streams into BOS-led contexts, from every source."""

from __future__ import annotations

import json

import pytest
import torch

from interp.data import batched, file_documents, pack, reference_documents, token_batches
from interp.reference.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_pack_gives_bos_led_contexts_that_reassemble_the_stream():
    docs = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [14, 15]]
    contexts = list(pack(docs, ctx_len=4, bos_id=0))
    assert all(len(c) == 4 and c[0] == 0 for c in contexts)
    body = [t for c in contexts for t in c[1:]]
    stream = [t for d in docs for t in [0, *d]]
    assert body == stream[: len(body)]


def test_pack_rejects_a_context_too_short_for_bos():
    with pytest.raises(ValueError, match="at least 2"):
        list(pack([[1, 2]], ctx_len=1, bos_id=0))


def test_batched_drops_the_short_tail():
    batches = list(batched(([i, i] for i in range(5)), batch_size=2))
    assert len(batches) == 2 and batches[0].dtype == torch.long and batches[0].shape == (2, 2)


def test_reference_batches_are_deterministic_for_a_seed(tokenizer):
    def first(seed):
        return next(token_batches("reference", tokenizer, ctx_len=32, batch_size=4, seed=seed))

    a, b, c = first(0), first(0), first(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 32) and (a[:, 0] == tokenizer.bos_token_id).all()


def test_reference_documents_are_token_ids(tokenizer):
    doc = next(reference_documents(tokenizer, seed=0))
    assert all(isinstance(t, int) and 0 <= t < len(tokenizer) for t in doc)


def test_local_txt_and_jsonl_files(tokenizer, tmp_path):
    (tmp_path / "a.txt").write_text("Anna saw Rome.\n\nBen met Clara in Oslo yesterday.\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "The red fox chased the blue owl."}) + "\n")
    docs = list(file_documents([tmp_path / "a.txt", tmp_path / "b.jsonl"], tokenizer))
    assert [tokenizer.decode(d) for d in docs] == [
        "Anna saw Rome.",
        "Ben met Clara in Oslo yesterday.",
        "The red fox chased the blue owl.",
    ]
    shuffled = list(file_documents([tmp_path / "a.txt", tmp_path / "b.jsonl"], tokenizer, seed=3))
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, docs))
    batches = list(token_batches([str(tmp_path / "a.txt")], tokenizer, ctx_len=4, batch_size=1))
    assert batches and all(b[0, 0] == tokenizer.bos_token_id for b in batches)


def test_bad_files_get_clear_errors(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        list(file_documents([tmp_path / "missing.txt"], tokenizer))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"use \.txt or \.jsonl"):
        list(file_documents([tmp_path / "x.csv"], tokenizer))
    (tmp_path / "y.jsonl").write_text(json.dumps({"body": "hi"}) + "\n")
    with pytest.raises(KeyError, match="text_field"):
        list(file_documents([tmp_path / "y.jsonl"], tokenizer))
