"""Packing token streams into BOS-led contexts, from every source."""

from __future__ import annotations

import dataclasses
import json
from itertools import islice

import pytest
import torch

from interp.data import (
    batched,
    data_option,
    file_documents,
    has_reference_vocab,
    labelled_reference_documents,
    load_contexts,
    pack,
    pack_labelled,
    reference_documents,
    reference_texts,
    token_batches,
)
from interp.errors import DataError
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


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "no such data file"),
        ("x.csv", "a,b\n", r"unsupported file type '\.csv'; use \.txt or \.jsonl"),
        ("empty.txt", "\n\n  \n", "holds no text"),
        ("latin1.txt", b"caf\xe9 au lait", "is not UTF-8 text"),
        ("y.jsonl", json.dumps({"body": "hi"}) + "\n", "has no field 'text'"),
        ("z.jsonl", "{not json\n", "is not valid JSON"),
        ("w.jsonl", json.dumps({"text": 3}) + "\n", r"is not a string \(it is int\)"),
    ],
)
def test_bad_files_raise_one_data_error(tokenizer, tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        next(token_batches(str(path), tokenizer, ctx_len=8, batch_size=1))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_path_that_does_not_exist_is_not_taken_for_a_dataset_name(tokenizer, tmp_path):
    for source in (str(tmp_path / "corpus"), "my_text.txt", "notes/train.jsonl", "./corpus"):
        with pytest.raises(DataError, match="no such data file"):
            next(token_batches(source, tokenizer, ctx_len=8, batch_size=1))


def test_a_directory_is_refused(tokenizer, tmp_path):
    with pytest.raises(DataError, match="is not a file"):
        next(token_batches(str(tmp_path), tokenizer, ctx_len=8, batch_size=1))


def test_too_short_a_source_says_how_much_it_holds_and_what_to_ask_for(tokenizer, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("Anna saw Rome.\n\nBen met Clara in Oslo yesterday.\n")
    ids = [t for doc in file_documents([path], tokenizer) for t in [tokenizer.bos_token_id, *doc]]
    have = len(ids) // 3  # contexts of 4 tokens: BOS + 3 of the stream
    assert have >= 2
    assert load_contexts(str(path), tokenizer, have, ctx_len=4).shape == (have, 4)
    with pytest.raises(DataError) as caught:
        load_contexts(str(path), tokenizer, have + 1, ctx_len=4)
    message = str(caught.value)
    assert f"gives only {have} contexts of 4 tokens ({4 * have} tokens)" in message
    assert f"fewer than the {have + 1} contexts" in message and "--data" in message
    batches = token_batches(str(path), tokenizer, ctx_len=4, batch_size=1, n_batches=have + 1)
    assert len([next(batches) for _ in range(have)]) == have
    with pytest.raises(DataError, match="gives only"):
        next(batches)
    # without n_batches a finite source just ends
    assert len(list(token_batches(str(path), tokenizer, ctx_len=4, batch_size=1))) == have


@pytest.mark.slow  # importing datasets and its offline lookup take 10-20 s
def test_a_missing_hugging_face_dataset_is_one_data_error(tokenizer, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="could not read the Hugging Face dataset 'no-such-org/no-such-dataset'"):
        next(token_batches("no-such-org/no-such-dataset", tokenizer, ctx_len=8, batch_size=1))


@pytest.fixture(scope="module")
def bpe():
    """A byte-level BPE tokenizer like GPT-2's, without the reference vocabulary."""
    from support.families import build_tokenizer

    return build_tokenizer()


def test_the_reference_corpus_reads_as_text_for_any_tokenizer(tokenizer, bpe):
    assert has_reference_vocab(tokenizer) and not has_reference_vocab(bpe)
    texts = list(islice(reference_texts(seed=2), 20))
    assert [bpe.decode(d) for d in islice(reference_documents(bpe, seed=2), 20)] == texts
    # for the reference tokenizer the text tokenizes to the corpus's own ids
    assert [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts] == list(islice(reference_documents(tokenizer, seed=2), 20))
    batch = next(token_batches("reference", bpe, ctx_len=32, batch_size=4, seed=2))
    assert batch.shape == (4, 32) and (batch[:, 0] == bpe.bos_token_id).all() and int(batch.max()) < len(bpe)


def test_corpus_labels_follow_the_words_for_any_tokenizer(tokenizer, bpe):
    from interp.reference.corpus import CorpusGenerator

    for doc, (ids, labels) in islice(zip(CorpusGenerator(seed=4), labelled_reference_documents(bpe, seed=4)), 30):
        assert len(ids) == len(labels) and bpe.decode(ids) == doc.text
        # every labelled word's tokens carry its label, in order; spaces carry none
        pieces = bpe.convert_ids_to_tokens(ids)
        for piece, label in zip(pieces, labels):
            if piece.replace("\u0120", "") == "":
                assert label is None
        labelled_text = "".join(bpe.decode([i]) for i, lab in zip(ids, labels) if lab is not None).replace(" ", "")
        words = "".join(t.replace("\u2581", "") for t, lab in zip(doc.tokens, doc.labels) if lab is not None)
        assert labelled_text == words
    direct = next(labelled_reference_documents(tokenizer, seed=4))
    doc = next(iter(CorpusGenerator(seed=4)))
    assert direct == (tokenizer.convert_tokens_to_ids(doc.tokens), doc.labels)


def test_pack_labelled_keeps_each_token_with_its_label():
    docs = [([5, 6, 7], ["a", None, "c"]), ([8], ["d"]), ([9, 10, 11, 12, 13], list("efghi"))]
    packed = list(pack_labelled(docs, ctx_len=4, bos_id=0))
    assert [ids for ids, _ in packed] == list(pack([d for d, _ in docs], ctx_len=4, bos_id=0))
    for ids, labels in packed:
        assert labels[0] is None and len(labels) == len(ids)
    assert packed[0] == ([0, 0, 5, 6], [None, None, "a", None])
    assert packed[1] == ([0, 7, 0, 8], [None, "c", None, "d"])


def test_dataset_is_a_deprecated_alias_of_data():
    from interp.errors import ConfigError

    with pytest.warns(DeprecationWarning, match="use --data"):
        assert data_option("reference", "x.txt") == "x.txt"
    assert data_option("y.txt", None) == "y.txt"
    with pytest.raises(ConfigError, match="pass only --data"):
        data_option("y.txt", "x.txt")


# every command that reads text takes --data; the four that called it --dataset still accept that
DATA_COMMANDS = {
    ("cache", "run"): ["--out", "x", "--n-tokens", "1k"],
    ("transcoder", "train"): [],
    ("transcoder", "eval"): ["runs/tc"],
    ("sparsity",): [],
    ("redundancy",): [],
    ("neurons", "clamp"): ["--layer", "0", "--neuron", "0"],
    ("circuit", "trace"): ["--prompt", "The war"],
    ("codebook", "train"): [],
    ("codebook", "report"): ["--run", "runs/cb"],
    ("codebook", "search"): ["--run", "runs/cb", "--regex", "x"],
    ("units",): [],
}
RENAMED = {("transcoder", "train"), ("transcoder", "eval"), ("circuit", "trace"), ("units",)}


def test_every_command_that_reads_text_is_in_the_list():
    from interp.cli import COMMANDS, build_parser

    build_parser()
    readers = {path for path, cmd in COMMANDS.items() if "data" in {f.name for f in dataclasses.fields(cmd.config)}}
    assert readers == set(DATA_COMMANDS)


@pytest.mark.parametrize("path", list(DATA_COMMANDS), ids=" ".join)
def test_every_command_takes_data(path):
    from interp.cli import build_parser

    parser = build_parser()
    args = parser.parse_args([*path, *DATA_COMMANDS[path], "--data", "my.jsonl"])
    assert args.cfg.data == "my.jsonl"
    if path in RENAMED:
        with pytest.warns(DeprecationWarning, match="use --data"):
            args = parser.parse_args([*path, *DATA_COMMANDS[path], "--dataset", "old.txt"])
        assert args.cfg.data == "old.txt" and args.cfg.dataset is None
    else:
        assert "dataset" not in {f.name for f in dataclasses.fields(args.cfg)}
