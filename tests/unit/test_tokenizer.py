"""The reference tokenizer: GPT-2-like years, exact round trips, and transformer-lens use."""

from __future__ import annotations

import pytest

from interp.reference.corpus import CorpusGenerator
from interp.reference.tokenizer import build_tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_years_split_into_two_digit_tokens_like_gpt2(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("from the year 1732 to", add_special_tokens=False)["input_ids"])
    assert tokens == ["▁from", "▁the", "▁year", "▁17", "32", "▁to"]


def test_bos_is_prepended_and_unknown_words_map_to_unk(tokenizer):
    ids = tokenizer("Ben saw zebraz")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert ids[-1] == tokenizer.unk_token_id


def test_corpus_text_round_trips_through_the_tokenizer(tokenizer):
    gen = CorpusGenerator(seed=11)
    vocab = tokenizer.get_vocab()
    for _ in range(300):
        doc = gen.document()
        ids = tokenizer(doc.text, add_special_tokens=False)["input_ids"]
        assert ids == [vocab[t] for t in doc.tokens], doc.text
        assert tokenizer.decode(ids) == doc.text


def test_saved_tokenizer_loads_identically(tokenizer, tmp_path):
    tokenizer.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(tmp_path)
    text = "The war lasted from the year 1732 to the year 1745."
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_missing_tokenizer_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="interp reference train"):
        load_tokenizer(tmp_path)


def test_transformer_lens_to_tokens_and_to_string(tokenizer):
    from interp.reference.model import architecture, build

    model = build(architecture(len(tokenizer)), tokenizer, seed=0)
    tokens = model.to_tokens("Anna saw Rome.")
    assert tokens[0, 0].item() == tokenizer.bos_token_id
    assert tokens.shape == (1, 5)
    assert model.to_string(tokens[0, 1:]) == "Anna saw Rome."
    assert model.to_tokens("Anna saw Rome.", prepend_bos=False).shape == (1, 4)
