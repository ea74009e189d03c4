"""The reference model's closed-vocabulary tokenizer, as a Hugging Face fast tokenizer.

It is a word-level tokenizer built with the ``tokenizers`` library:

- spaces become the Metaspace marker "▁" attached to the next word (like GPT-2's "Ġ"),
- digits are split into pairs, so " 1732" becomes " 17", "32" exactly as GPT-2 does,
- punctuation is split off,
- "<|endoftext|>" is BOS, EOS and padding, as in GPT-2.

Saved as ``tokenizer.json`` (plus the ``transformers`` config files) and loaded as a
``PreTrainedTokenizerFast``, so transformer-lens' ``to_tokens`` / ``to_string`` work.
"""

from __future__ import annotations

from pathlib import Path

from interp.reference import vocab as V

_NAME = "interp-reference"


def build_tokenizer():
    """Build the reference tokenizer from the vocabulary in :mod:`interp.reference.vocab`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(V.all_tokens())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=V.UNK))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=V.SPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(f"{V.SPACE}?[0-9][0-9]"), behavior="isolated"),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    core.decoder = decoders.Metaspace(replacement=V.SPACE, prepend_scheme="always", split=True)
    core.add_special_tokens([V.BOS, V.UNK])
    return _wrap(core)


def load_tokenizer(directory: str | Path):
    """Load the tokenizer from ``directory/tokenizer.json``."""
    from tokenizers import Tokenizer

    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no tokenizer.json in {directory}; rebuild the reference model's files with "
            "`interp reference train` or reinstall the package"
        )
    return _wrap(Tokenizer.from_file(str(path)))


def _wrap(core):
    """A ``PreTrainedTokenizerFast`` that prepends BOS itself (transformer-lens detects it)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=V.BOS,
        eos_token=V.BOS,
        pad_token=V.BOS,
        unk_token=V.UNK,
        add_bos_token=True,
        name_or_path=_NAME,
        model_max_length=1024,
        clean_up_tokenization_spaces=False,
    )
