"""Tiny random checkpoints of every model family interp is tested on, built offline.

Each :class:`Family` builds a small random model (2-4 layers, d_model 32-64, a 384-token
byte-level BPE vocabulary) of one architecture with the ``transformers`` config class of
that architecture, so it exercises the same conversion code as the published model:

========  ==============================  ===============================================
key       cached under (a name TL knows)  what it covers
========  ==============================  ===============================================
gpt2      gpt2                            LayerNorm, learned positions, GELU MLP
gpt-neo   roneneldan/TinyStories-1M       LayerNorm, alternating global/local attention
pythia    EleutherAI/pythia-14m           parallel attention+MLP, partial rotary
llama     meta-llama/Llama-3.2-1B         RMSNorm, gated SiLU MLP, grouped-query
                                          attention, llama3 rope scaling
gemma2    google/gemma-2-2b               RMSNorm before and after each sublayer, gated
                                          GELU MLP, attention and logit soft-capping,
                                          alternating local/global attention
qwen2     Qwen/Qwen2.5-0.5B               RMSNorm, gated MLP, QKV biases, GQA, tied
                                          embeddings
mistral   mistralai/Mistral-7B-v0.1       RMSNorm, gated MLP, GQA, sliding-window
                                          attention on every layer
solu      (none: TransformerLens-native)  LayerNorm, SoLU activation with its LayerNorm
olmo3     allenai/Olmo-3-1025-7B          post-norm blocks (RMSNorm after each sublayer,
                                          none before), query/key RMSNorm, gated MLP,
                                          GQA, sliding-window layers
========  ==============================  ===============================================

``olmo3`` stands for OLMo 2 as well: both are TransformerLens' ``POST_NORM_ARCHITECTURES``,
with the same block. TransformerLens 3.9 converts OLMo 2 only at its published sizes, whose
table it picks by name after reading the hub's config, so a tiny OLMo 2 cannot be loaded;
OLMo 3 it converts from ``config.json`` at any size.

Extra families, covered by the loading tests only (``core=False``): ``gemma`` (Gemma 1,
multi-query attention, google/gemma-2b), ``gpt-j`` (parallel blocks, rotary on 8 of 16
dimensions, EleutherAI/gpt-j-6B), ``opt`` (ReLU, offset positions, facebook/opt-125m),
``phi3`` (fused QKV and gate/up projections, sliding window,
microsoft/Phi-3-mini-4k-instruct), ``qwen3`` (query/key RMSNorm, Qwen/Qwen3-0.6B) and
``bloom`` (ALiBi, LayerNorm after the embedding, bigscience/bloom-560m).

The local windows are a few tokens wide and the soft-caps small, so a prompt of a dozen
tokens reaches them: a converter that ignored either would change the logits.

Building blocks (all offline, deterministic for a seed):

- :func:`build_tokenizer`: a byte-level BPE tokenizer trained on :data:`CORPUS`, wrapped in a
  ``PreTrainedTokenizerFast`` with ``<|endoftext|>`` as BOS, EOS and padding (GPT-2's own
  tokenizer files cannot be downloaded here); any text tokenizes.
- :func:`hf_model` (``family``) -> the ``transformers`` model in eval mode;
  :func:`save_checkpoint` writes it with ``save_pretrained`` (model and tokenizer) to a
  directory; :func:`install_in_cache` lays the same files out as a Hugging Face cache
  (``models--org--name/snapshots/<rev>/...``, ``refs/main``) so loading the family *by name*
  runs the real cache lookup; :func:`hooked_model` builds the TransformerLens-native families.

For tests (a capability x architecture matrix), this module is a pytest plugin
(``tests/conftest.py`` lists it in ``pytest_plugins``) with these fixtures:

- ``family_dirs`` (session): ``family_dirs[key]`` is a checkpoint directory for a
  Hugging Face family, built once per session.
- ``family_models`` (session): ``family_models[key]`` is that family loaded with
  ``interp.load_model`` (default weight processing, CPU); for ``solu`` it is the
  ``HookedTransformer`` itself, unprocessed (its LayerNorms keep their weights). Built once
  per session, shared: do not modify it (copy it with ``copy.deepcopy`` first).
- ``hf_cache`` (function): a temporary ``HF_HOME`` with ``HF_HUB_OFFLINE=1``;
  ``hf_cache.install(key)`` caches that family under its hub name and returns the name.

Parametrise over families with :func:`family_params`::

    from support.families import family_params

    @pytest.mark.parametrize("family", family_params())
    def test_cache_equals_run_with_cache(family, family_models):
        model = family_models[family]
        ...

``family_params(exclude=("gemma2",), reason="...")`` leaves a family out, and
``family_params(hf_only=True)`` keeps the ones with a Hugging Face checkpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

CORPUS = (
    "Anna saw Rome. Ben met Clara in Oslo yesterday.",
    "The red fox chased the blue owl over the hill.",
    "When Mary and John went to the store, John gave a drink to Mary.",
    "The war lasted from 1732 to 1789, and the peace lasted longer.",
    "Paris is the capital of France; Berlin is the capital of Germany.",
    "def add(a, b):\n    return a + b\n",
    "She sells sea shells by the sea shore, and the shells she sells are sea shells.",
    "One, two, three, four, five, six, seven, eight, nine, ten.",
)
"""The text the test tokenizer is trained on (and a source of test prompts)."""

PROMPTS = (
    "Anna saw Rome. Ben met Clara in Oslo yesterday.",
    "The red fox chased the blue owl over the hill, and the owl flew away.",
    "Text the tokenizer never saw: zebra quartz 42!",
)
"""Prompts for comparing logits (the second and third are longer than every local window)."""

BOS = "<|endoftext|>"
VOCAB_SIZE = 384
N_CTX = 64


def build_tokenizer(prepends_bos: bool = False):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on :data:`CORPUS` (384 tokens).

    It adds no BOS itself, as GPT-2's, unless ``prepends_bos`` (as Llama's): TransformerLens
    reloads a tokenizer that does not from its saved files, which one built in memory lacks.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS, trainer=trainer)
    return wrap_tokenizer(core, prepends_bos)


def wrap_tokenizer(core, prepends_bos: bool = False, model_max_length: int = N_CTX):
    """A ``tokenizers.Tokenizer`` as a ``PreTrainedTokenizerFast`` with :data:`BOS` as BOS, EOS and padding."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=BOS,
        pad_token=BOS,
        add_bos_token=prepends_bos,
        name_or_path="interp-test-bpe",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def _special_ids(tokenizer) -> dict:
    token = tokenizer.convert_tokens_to_ids(BOS)
    return {"vocab_size": len(tokenizer), "bos_token_id": token, "eos_token_id": token, "pad_token_id": token}


DECODER = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": N_CTX,
}
"""A small Llama-style decoder: 2 layers, d_model 64, 4 query heads sharing 2 key/value heads,
d_mlp 128, 64 positions (in ``transformers``' names)."""


def decoder_kwargs(tokenizer, **overrides) -> dict:
    """Keyword arguments of a :data:`DECODER`-sized ``transformers`` config for ``tokenizer``, with ``overrides``."""
    return {**DECODER, **_special_ids(tokenizer), **overrides}


@dataclass(frozen=True)
class Family:
    """One architecture family of the test matrix."""

    key: str
    """Short name used in test ids (``gpt2``, ``llama``, ...)."""
    config_class: str
    """The ``transformers`` config class (``HookedTransformerConfig`` for a TransformerLens-native family)."""
    settings: dict = field(repr=False)
    """Its arguments (over :data:`DECODER` when ``decoder``), besides the vocabulary and special tokens."""
    hub_name: str | None
    """A name TransformerLens knows, under which the checkpoint is cached; None for TL-native."""
    traits: tuple[str, ...]
    """What the family exercises (``rmsnorm``, ``gated_mlp``, ``parallel``, ``post_norm``: a norm after
    each sublayer and none before, ``pre_and_post_norm``: both, ...)."""
    decoder: bool = False
    """Start from :data:`DECODER`'s sizes."""
    core: bool = True
    """In the capability x architecture matrix (False: only the loading tests cover it)."""

    @property
    def is_hf(self) -> bool:
        """True when the family is a Hugging Face checkpoint (False: a HookedTransformer built directly)."""
        return self.hub_name is not None

    def config(self, tokenizer):
        """The family's config for ``tokenizer`` (its vocabulary size and special tokens)."""
        if not self.is_hf:
            import transformer_lens

            return getattr(transformer_lens, self.config_class)(d_vocab=len(tokenizer), **self.settings)
        import transformers

        kwargs = (
            decoder_kwargs(tokenizer, **self.settings) if self.decoder else {**self.settings, **_special_ids(tokenizer)}
        )
        return getattr(transformers, self.config_class)(**kwargs)


_LLAMA3_ROPE = {  # Llama 3.2's rope scaling, over 64 positions instead of 8192 so that short prompts reach it
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 4.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": N_CTX,
}
_GEMMA2 = {
    "num_hidden_layers": 4,
    "head_dim": 16,
    "query_pre_attn_scalar": 24,
    "sliding_window": 4,
    "attn_logit_softcapping": 2.0,
    "final_logit_softcapping": 3.0,
}
_NEOX = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 128}
_NEOX_ROPE = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25}
_OPT = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "ffn_dim": 128, "word_embed_proj_dim": 64}
_SOLU = {"n_layers": 2, "d_model": 32, "n_heads": 4, "d_head": 8, "d_mlp": 128, "n_ctx": N_CTX, "act_fn": "solu_ln"}

FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        Family("gpt2", "GPT2Config", {"n_layer": 2, "n_embd": 32, "n_head": 4, "n_positions": N_CTX}, "gpt2",
               ("layernorm", "learned_pos")),
        Family("gpt-neo", "GPTNeoConfig",
               {"num_layers": 2, "hidden_size": 32, "num_heads": 4, "attention_types": [[["global", "local"], 1]],
                "window_size": 4, "max_position_embeddings": 2048},
               "roneneldan/TinyStories-1M", ("layernorm", "learned_pos", "local_attn")),
        Family("pythia", "GPTNeoXConfig",
               {**_NEOX, "max_position_embeddings": 2048, "rope_parameters": _NEOX_ROPE, "use_parallel_residual": True},
               "EleutherAI/pythia-14m", ("layernorm", "rotary", "parallel")),
        Family("llama", "LlamaConfig",
               {"max_position_embeddings": 4 * N_CTX, "rope_parameters": _LLAMA3_ROPE, "tie_word_embeddings": True},
               "meta-llama/Llama-3.2-1B", ("rmsnorm", "rotary", "gated_mlp", "gqa"), decoder=True),
        Family("gemma2", "Gemma2Config", _GEMMA2, "google/gemma-2-2b",
               ("rmsnorm", "rotary", "gated_mlp", "gqa", "pre_and_post_norm", "softcap", "local_attn"), decoder=True),
        Family("qwen2", "Qwen2Config", {"tie_word_embeddings": True}, "Qwen/Qwen2.5-0.5B",
               ("rmsnorm", "rotary", "gated_mlp", "gqa", "qkv_bias"), decoder=True),
        Family("mistral", "MistralConfig", {"sliding_window": 4}, "mistralai/Mistral-7B-v0.1",
               ("rmsnorm", "rotary", "gated_mlp", "gqa", "local_attn"), decoder=True),
        Family("solu", "HookedTransformerConfig", {**_SOLU, "normalization_type": "LN", "model_name": "tiny-solu"},
               None, ("layernorm", "learned_pos", "solu")),
        Family("olmo3", "Olmo3Config", {"sliding_window": 4, "layer_types": ["sliding_attention", "full_attention"]},
               "allenai/Olmo-3-1025-7B", ("rmsnorm", "rotary", "gated_mlp", "gqa", "post_norm", "qk_norm", "local_attn"),
               decoder=True),
        Family("gemma", "GemmaConfig", {"num_key_value_heads": 1, "head_dim": 16}, "google/gemma-2b",
               ("rmsnorm", "rotary", "gated_mlp", "mqa"), decoder=True, core=False),
        Family("gpt-j", "GPTJConfig", {"n_layer": 2, "n_embd": 64, "n_head": 4, "rotary_dim": 8, "n_positions": N_CTX},
               "EleutherAI/gpt-j-6B", ("layernorm", "rotary", "parallel"), core=False),
        Family("opt", "OPTConfig", {**_OPT, "max_position_embeddings": N_CTX}, "facebook/opt-125m",
               ("layernorm", "learned_pos", "relu"), core=False),
        Family("phi3", "Phi3Config", {"sliding_window": 4}, "microsoft/Phi-3-mini-4k-instruct",
               ("rmsnorm", "rotary", "gated_mlp", "gqa", "local_attn"), decoder=True, core=False),
        Family("qwen3", "Qwen3Config", {"head_dim": 16}, "Qwen/Qwen3-0.6B",
               ("rmsnorm", "rotary", "gated_mlp", "gqa", "qk_norm"), decoder=True, core=False),
        Family("bloom", "BloomConfig", {"n_layer": 2, "hidden_size": 64, "n_head": 4}, "bigscience/bloom-560m",
               ("layernorm", "alibi", "embedding_norm"), core=False),
    )
}  # fmt: skip
"""Every family of the test matrix, by key."""


def hf_model(key: str, seed: int = 0, tokenizer=None):
    """The family's random ``transformers`` model (float32, eval mode) for ``seed``."""
    from transformers import AutoModelForCausalLM

    family = FAMILIES[key]
    if not family.is_hf:
        raise ValueError(f"{key} is TransformerLens-native; use hooked_model({key!r})")
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    torch.manual_seed(seed)
    config = family.config(tokenizer)
    config.initializer_range = 0.1  # larger than the default 0.02, so soft-caps and windows matter
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def hooked_model(key: str, seed: int = 0):
    """A TransformerLens-native family's ``HookedTransformer`` (random weights for ``seed``)."""
    from transformer_lens import HookedTransformer

    family = FAMILIES[key]
    if family.is_hf:
        raise ValueError(f"{key} is a Hugging Face family; use hf_model({key!r}) or save_checkpoint")
    tokenizer = build_tokenizer(prepends_bos=True)
    cfg = family.config(tokenizer)
    cfg.seed = seed
    return HookedTransformer(cfg, tokenizer=tokenizer).eval()


def save_checkpoint(key: str, directory: str | Path, seed: int = 0) -> Path:
    """Write the family's checkpoint (``save_pretrained`` of model and tokenizer) to ``directory``."""
    directory = Path(directory)
    tokenizer = build_tokenizer()
    hf_model(key, seed, tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def cache_snapshot(hub_cache: str | Path, name: str, revision: str = "0" * 40) -> Path:
    """The snapshot directory of ``name`` in a Hugging Face cache, with ``refs/main`` pointing at it."""
    repo = Path(hub_cache) / ("models--" + name.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def install_in_cache(key: str, hub_cache: str | Path, source: str | Path | None = None, name: str | None = None) -> str:
    """Cache the family's checkpoint under its hub name (or ``name``) in ``hub_cache``; return the name.

    ``source`` is a checkpoint directory to copy (built with :func:`save_checkpoint` when None).
    """
    family = FAMILIES[key]
    name = name or family.hub_name
    if name is None:
        raise ValueError(f"{key} has no Hugging Face checkpoint to cache")
    snapshot = cache_snapshot(hub_cache, name)
    if source is None:
        save_checkpoint(key, snapshot)
    else:
        for path in Path(source).iterdir():
            shutil.copy2(path, snapshot / path.name)
    return name


def family_params(hf_only: bool = False, exclude: Iterable[str] = (), reason: str = "", extra: bool = False) -> list:
    """``pytest.param`` per family (id = key) for ``@pytest.mark.parametrize("family", ...)``.

    The core families by default; ``extra=True`` adds the ones only the loading tests need.
    Excluded families stay in the list, skipped with ``reason``, so the matrix shows the gap.
    """
    excluded = set(exclude)
    unknown = excluded - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; known: {sorted(FAMILIES)}")
    params = []
    for key, family in FAMILIES.items():
        if (hf_only and not family.is_hf) or (not extra and not family.core):
            continue
        marks = [pytest.mark.skip(reason=reason or f"not applicable to {key}")] if key in excluded else []
        params.append(pytest.param(key, id=key, marks=marks))
    return params


class _Lazy(dict):
    """A dict that builds a missing value with ``make(key)`` (once)."""

    def __init__(self, make: Callable[[str], object]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: str):
        if key not in FAMILIES:
            raise KeyError(f"unknown family {key!r}; known: {', '.join(FAMILIES)}")
        self[key] = value = self._make(key)
        return value


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory) -> dict:
    """``family_dirs[key]``: the family's checkpoint directory (Hugging Face families), built on first use."""
    root = tmp_path_factory.mktemp("families")
    return _Lazy(lambda key: save_checkpoint(key, root / key))


@pytest.fixture(scope="session")
def family_models(family_dirs) -> dict:
    """``family_models[key]``: the family as interp loads it (default processing, CPU), built on first use."""
    from interp.models import load_model

    def make(key: str):
        source = family_dirs[key] if FAMILIES[key].is_hf else hooked_model(key)
        return load_model(source, device="cpu")

    return _Lazy(make)


class HubCache:
    """A temporary Hugging Face cache (see the ``hf_cache`` fixture)."""

    def __init__(self, home: Path, family_dirs: dict) -> None:
        self.home = home
        self.hub = home / "hub"
        self._family_dirs = family_dirs

    def install(self, key: str, name: str | None = None) -> str:
        """Cache family ``key`` under its hub name (or ``name``); return the name to load."""
        return install_in_cache(key, self.hub, source=self._family_dirs[key], name=name)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, family_dirs) -> HubCache:
    """An empty Hugging Face cache in a temporary ``HF_HOME``, offline (``HF_HUB_OFFLINE=1``)."""
    home = tmp_path / "hf-home"
    (home / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("INTERP_GPT2_PATH", raising=False)
    return HubCache(home, family_dirs)
