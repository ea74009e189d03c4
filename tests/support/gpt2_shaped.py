"""A GPT-2-small-shaped checkpoint with random weights, built offline, for the ``gpt2`` tests.

GPT-2 small's weights and tokenizer files cannot be downloaded on every machine, so each test
about GPT-2 is split in two: the mechanics (shapes, hook points, decoding, training, evaluation,
redundancy, units) run on every run against a checkpoint of GPT-2 small's exact shape with
random weights, and the assertions on published numbers stay marked ``gpt2`` (skipped, with
the reason, when the real weights are absent).

- :func:`build_tokenizer`: a byte-level BPE (:func:`support.families.wrap_tokenizer`) trained
  on the test corpus and the reference corpus rendered as text, padded with unused tokens to
  GPT-2's 50,257, with ``<|endoftext|>`` last (id 50,256) as in GPT-2. Any text tokenizes;
  the reference corpus's words are mostly single tokens, and so is every two-digit number.
- :func:`save_checkpoint`: GPT-2 small's ``GPT2Config`` (12 layers, d_model 768, 12 heads,
  d_mlp 3,072, 1,024 positions, 50,257 tokens) with random weights drawn as GPT-2 initialises
  them, written with ``save_pretrained`` with the tokenizer: about 500 MB of float32.

As a pytest plugin (``tests/conftest.py`` lists it) it gives these fixtures:

- ``gpt2_shaped_dir`` (session): the checkpoint directory, written once per session into a
  temporary directory (set ``INTERP_GPT2_SHAPED_DIR`` to keep it between sessions: it is
  built there when missing and reused when present).
- ``gpt2_shaped_model`` (session): that checkpoint loaded with ``interp.load_model`` (default
  weight processing, CPU). Shared by every test: do not modify it.
- ``gpt2_like`` (session, parametrised): ``random`` is ``gpt2_shaped_model``; ``gpt2`` is the
  real GPT-2 small (marked ``gpt2``, so skipped when its weights are absent). A test of
  mechanics takes ``gpt2_like`` and runs on both; ``gpt2_like_spec`` is what was loaded (the
  directory, or ``"gpt2"``), for a test that loads it again with other settings.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.families import BOS, CORPUS, wrap_tokenizer

N_LAYERS, D_MODEL, N_HEADS, N_CTX = 12, 768, 12, 1024
D_VOCAB = 50_257
"""GPT-2 small's vocabulary size; the BOS/EOS token is its last id, 50,256."""
BPE_VOCAB = 4_096
"""Tokens the BPE learns before the padding (it stops earlier when its text runs out of pairs)."""
TEXT_DOCUMENTS = 3_000
"""Reference-corpus documents (as text) the BPE is trained on, besides the test corpus."""
DIR_VARIABLE = "INTERP_GPT2_SHAPED_DIR"


def build_tokenizer():
    """A byte-level BPE tokenizer of exactly :data:`D_VOCAB` tokens, ``<|endoftext|>`` last."""
    import json
    from itertools import islice

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from interp.data import reference_texts

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    years = [f"{y:02d}" for y in range(100)] * 20  # GPT-2 has every two-digit number as one token
    core.train_from_iterator([*CORPUS, *years, *islice(reference_texts(seed=0), TEXT_DOCUMENTS)], trainer=trainer)
    spec = json.loads(core.to_str())
    vocab = spec["model"]["vocab"]
    learned = len(vocab)
    vocab.update({f"<|unused{i}|>": i for i in range(learned, D_VOCAB - 1)})  # unreachable: no merge makes them
    core = Tokenizer.from_str(json.dumps(spec))
    core.add_special_tokens([BOS])
    tokenizer = wrap_tokenizer(core, model_max_length=N_CTX)
    assert len(tokenizer) == D_VOCAB and tokenizer.bos_token_id == D_VOCAB - 1, (len(tokenizer), tokenizer.bos_token_id)
    return tokenizer


def save_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """Write the GPT-2-small-shaped checkpoint (random weights for ``seed``) and its tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    directory = Path(directory)
    tokenizer = build_tokenizer()
    bos = tokenizer.bos_token_id
    config = GPT2Config(n_layer=N_LAYERS, n_embd=D_MODEL, n_head=N_HEADS, n_positions=N_CTX, vocab_size=D_VOCAB,
                        bos_token_id=bos, eos_token_id=bos)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def gpt2_shaped_dir(tmp_path_factory) -> Path:
    """A GPT-2-small-shaped checkpoint directory (random weights), written once per session."""
    kept = os.environ.get(DIR_VARIABLE)
    if kept:
        directory = Path(kept)
        if not (directory / "config.json").is_file():
            save_checkpoint(directory)
        return directory
    return save_checkpoint(tmp_path_factory.mktemp("gpt2-shaped"))


@pytest.fixture(scope="session")
def gpt2_shaped_model(gpt2_shaped_dir):
    """The GPT-2-small-shaped checkpoint as ``interp.load_model`` loads it (CPU). Shared: do not modify."""
    from interp.models import load_model

    return load_model(str(gpt2_shaped_dir), device="cpu")


@pytest.fixture(scope="session", params=["random", pytest.param("gpt2", marks=pytest.mark.gpt2)])
def gpt2_like_spec(request) -> str:
    """What ``interp.load_model`` loads for ``gpt2_like``: the random checkpoint's directory, or ``gpt2``."""
    return str(request.getfixturevalue("gpt2_shaped_dir")) if request.param == "random" else "gpt2"


@pytest.fixture(scope="session")
def gpt2_like(request, gpt2_like_spec):
    """GPT-2 small's shape: random weights (``random``), and the real weights (``gpt2``, when present)."""
    return request.getfixturevalue("gpt2_model" if gpt2_like_spec == "gpt2" else "gpt2_shaped_model")
