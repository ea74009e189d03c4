"""A Hugging Face checkpoint as a ``HookedTransformer``, converted by TransformerLens' own code.

TransformerLens 3.x builds a model's configuration in ``convert_hf_model_config`` in one of
two ways: from a table of published sizes, chosen by the model's *name* (every Llama-2/3,
Gemma, CodeLlama and OLMo name), or from the checkpoint's ``config.json``, chosen by its
*architecture* (GPT-2, GPT-Neo, GPT-J, GPT-NeoX, OPT, Bloom, Llama, Mistral, Mixtral, Qwen
1-3, Phi 1-3, ...). For a local directory it takes the architecture from the directory's
*name* when the name contains "llama" or "gemma", which is why a directory called
``tiny-llama`` failed with ``'NoneType' object has no attribute 'hidden_size'`` (the Llama
branch with no config read) and ``tiny-gemma2`` with ``GemmaForCausalLM is not currently
supported``. interp picks the configuration in this order, and checks each candidate's
sizes (layers, widths, heads, key/value heads) against the checkpoint's own, read through
TransformerLens' generic mapping ``map_default_transformer_lens_config``:

1. **by name** (``name`` given, as for a model loaded by name from the cache): exactly what
   ``HookedTransformer.from_pretrained(name)`` uses, if its sizes are the checkpoint's;
2. **by architecture**: the checkpoint's config.json read under a neutral path (a temporary
   copy, so no directory name steers the choice), through the architecture branch;
3. **by published size**, for architectures TransformerLens converts only by name: the table
   of the published model of that architecture whose sizes are the checkpoint's;
4. **Gemma and Gemma 2 of any size**: the table of a published model of the architecture
   with the checkpoint's sizes, soft-caps, window, layer pattern and attention scale read
   from its config.json (:data:`OVERLAYS`); tested against ``transformers``' logits.

Anything else is refused with one sentence. Transformers 5 no longer writes GPT-2's
``n_ctx`` (it is ``n_positions``), which TransformerLens' GPT-2 branch reads: the neutral
copy adds it. Weights are converted by ``get_pretrained_state_dict`` and processed as
``from_pretrained`` processes them, with its rules (:func:`processing_for`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from interp.errors import ModelLoadError

logger = logging.getLogger(__name__)

SIZE_FIELDS = ("n_layers", "d_model", "n_heads", "d_head")
"""The sizes a TransformerLens configuration must share with the checkpoint it converts (with the
number of key/value heads). Every other shape is checked weight by weight (:func:`check_state_dict`);
d_mlp is not compared here because the generic mapping guesses it for some architectures (OPT's
``ffn_dim``)."""


def processing_for(cfg, fold_ln: bool, center_writing_weights: bool, center_unembed: bool) -> dict:
    """The weight processing ``from_pretrained`` applies to ``cfg``'s architecture, given what was asked.

    TransformerLens' rules: a shortformer model takes none of the three; a post-norm
    architecture (``POST_NORM_ARCHITECTURES``) cannot fold or centre writing weights; logit
    soft-capping is not shift-invariant, so the unembedding is not centred. (RMSNorm models
    fold their norm weights but are not centred: TransformerLens skips that itself.)
    """
    from transformer_lens.utilities.activation_functions import softcap_enabled
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    wanted = {"fold_ln": fold_ln, "center_writing_weights": center_writing_weights, "center_unembed": center_unembed}
    off = set()
    if cfg.positional_embedding_type == "shortformer":
        off |= set(wanted)
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        off |= {"fold_ln", "center_writing_weights"}
    if softcap_enabled(cfg.output_logits_soft_cap):
        off.add("center_unembed")
    for key in sorted(off & {k for k, v in wanted.items() if v}):
        logger.info("%s: %s does not apply to this architecture (TransformerLens' rule)", cfg.model_name, key)
    return {key: value and key not in off for key, value in wanted.items()}


def _mapped(hf_config):
    """``hf_config`` with TransformerLens' names added (``d_model``, ``n_heads``, ...) by its generic mapping."""
    from transformer_lens.model_bridge.sources.transformers import map_default_transformer_lens_config

    return map_default_transformer_lens_config(hf_config)


def _checkpoint_sizes(mapped) -> dict:
    """The checkpoint's sizes in TransformerLens' names."""
    sizes = {name: getattr(mapped, name, None) for name in (*SIZE_FIELDS, "n_ctx")}
    sizes["n_kv_heads"] = getattr(mapped, "n_key_value_heads", None) or sizes["n_heads"]
    return sizes


def _disagreement(cfg, sizes: dict) -> str | None:
    """Where ``cfg`` and the checkpoint's ``sizes`` differ, as 'd_model 2048 vs 64', or None."""
    ours = {name: getattr(cfg, name) for name in SIZE_FIELDS}
    ours["n_kv_heads"] = cfg.n_key_value_heads or cfg.n_heads
    diffs = [f"{k} {ours[k]} vs {v}" for k, v in sizes.items() if k in ours and v is not None and ours[k] != v]
    if cfg.positional_embedding_type == "standard" and sizes["n_ctx"] is not None and cfg.n_ctx > sizes["n_ctx"]:
        diffs.append(f"n_ctx {cfg.n_ctx} vs {sizes['n_ctx']} learned positions")
    return ", ".join(diffs) or None


def _pretrained_config(source: str, hf_config, settings, **kwargs):
    """``get_pretrained_model_config(source, hf_cfg=...)`` with interp's device, dtype and fold_ln."""
    from transformer_lens import loading_from_pretrained as loading

    return loading.get_pretrained_model_config(
        source, hf_cfg=hf_config.to_dict(), cache_dir=str(settings.cache_dir), **kwargs
    )


def _neutral_copy(hf_config, directory: Path) -> Path:
    """Write ``hf_config`` to ``directory/checkpoint/config.json`` (GPT-2's n_ctx added when absent)."""
    path = directory / "checkpoint"
    hf_config.save_pretrained(path)
    if hf_config.model_type == "gpt2" and not hasattr(hf_config, "n_ctx"):
        import json

        content = json.loads((path / "config.json").read_text())
        content["n_ctx"] = hf_config.n_positions
        (path / "config.json").write_text(json.dumps(content))
    return path


def _published_tables(architecture: str) -> dict[str, dict]:
    """TransformerLens' tables of published models of ``architecture`` that it builds by name alone."""
    from transformer_lens import loading_from_pretrained as loading
    from transformer_lens.supported_models import OFFICIAL_MODEL_NAMES

    tables = {}
    with tempfile.TemporaryDirectory() as empty:
        for name in OFFICIAL_MODEL_NAMES:
            try:  # names read from a config.json find none in an empty cache, offline
                table = loading.convert_hf_model_config(name, cache_dir=empty, local_files_only=True)
            except Exception as err:  # noqa: BLE001 - not buildable offline: not a by-name table
                logger.debug("no offline table for %s: %s", name, type(err).__name__)
                continue
            if table.get("original_architecture") == architecture:
                tables[name] = table
    return tables


def _gemma_overlay(hf_config, mapped) -> dict:
    """The fields of a Gemma / Gemma 2 configuration that its config.json sets.

    Sizes, norm epsilon and activation come from TransformerLens' generic mapping; the rest
    as Gemma 2's Hugging Face code reads it: ``query_pre_attn_scalar`` (attention scale
    ``sqrt`` of it), ``layer_types`` (sliding layers are local), ``sliding_window`` and the
    two soft-caps (None disables them: TransformerLens' -1).
    """
    from transformer_lens import loading_from_pretrained as loading

    fields = {name: getattr(mapped, name) for name in (*SIZE_FIELDS, "d_mlp", "d_vocab", "n_ctx", "eps", "act_fn")}
    kv_heads = getattr(mapped, "n_key_value_heads", None)
    fields.update(
        n_key_value_heads=kv_heads if kv_heads != fields["n_heads"] else None,
        rotary_base=loading._get_rope_theta(hf_config),
        rotary_dim=fields["d_head"],
        attn_scale=math.sqrt(getattr(hf_config, "query_pre_attn_scalar", None) or fields["d_head"]),
    )
    layer_types = getattr(hf_config, "layer_types", None)
    if layer_types:
        fields["attn_types"] = ["local" if kind == "sliding_attention" else "global" for kind in layer_types]
        fields["use_local_attn"] = "sliding_attention" in layer_types
        fields["window_size"] = hf_config.sliding_window
    for ours, theirs in (
        ("attn_scores_soft_cap", "attn_logit_softcapping"),
        ("output_logits_soft_cap", "final_logit_softcapping"),
    ):
        if hasattr(hf_config, theirs):
            fields[ours] = getattr(hf_config, theirs) or -1.0
    return fields


OVERLAYS: dict[str, Callable] = {"GemmaForCausalLM": _gemma_overlay, "Gemma2ForCausalLM": _gemma_overlay}
"""Architectures TransformerLens converts only by name whose other sizes interp reads from config.json."""


def tl_config(hf_config, name: str | None, settings, **kwargs):
    """The TransformerLens configuration for a checkpoint with ``hf_config`` (see the module docstring).

    ``kwargs`` go to ``get_pretrained_model_config`` (``fold_ln``, ``device``, ``dtype``).
    """
    mapped = _mapped(hf_config)
    sizes = _checkpoint_sizes(mapped)
    architecture = (hf_config.architectures or [type(hf_config).__name__])[0]
    if name is not None:
        try:
            cfg = _pretrained_config(name, hf_config, settings, local_files_only=True, **kwargs)
        except Exception as err:  # noqa: BLE001 - TransformerLens' own failure: fall back to the checkpoint's config
            logger.info("TransformerLens' configuration of %s does not apply (%s: %s)", name, type(err).__name__, err)
        else:
            differs = _disagreement(cfg, sizes)
            if differs is None:
                return cfg
            logger.info("TransformerLens' configuration of %s is not this checkpoint's (%s)", name, differs)
    with tempfile.TemporaryDirectory(prefix="interp-") as tmp:
        try:
            cfg = _pretrained_config(str(_neutral_copy(hf_config, Path(tmp))), hf_config, settings, **kwargs)
        except NotImplementedError:
            cfg = _by_published_size(architecture, hf_config, mapped, sizes, settings, **kwargs)
        except Exception as err:
            raise ModelLoadError(
                f"TransformerLens {_tl_version()} could not read this {architecture} configuration "
                f"({type(err).__name__}: {first_line(err)})"
            ) from err
    differs = _disagreement(cfg, sizes)
    if differs is not None:
        raise ModelLoadError(f"TransformerLens' {architecture} configuration does not fit this checkpoint ({differs})")
    return cfg


def _by_published_size(architecture: str, hf_config, mapped, sizes: dict, settings, **kwargs):
    """Steps 3 and 4: a published model's table of the same architecture (and sizes, or overlaid ones)."""
    tables = _published_tables(architecture)
    for table_name in tables:
        cfg = _pretrained_config(table_name, hf_config, settings, local_files_only=True, **kwargs)
        if _disagreement(cfg, sizes) is None:
            logger.info("%s checkpoint converted with TransformerLens' table for %s", architecture, table_name)
            return cfg
    overlay = OVERLAYS.get(architecture)
    if not tables or overlay is None:
        shown = ", ".join(list(tables)[:4]) + (", ..." if len(tables) > 4 else "")
        published = f" ({shown})" if tables else ""
        raise ModelLoadError(
            f"TransformerLens {_tl_version()} converts {architecture} only for its published models{published}, "
            f"at their sizes, and this checkpoint ({_sizes_text(sizes)}) is not one of them"
        )
    template = _pretrained_config(next(iter(tables)), hf_config, settings, local_files_only=True, **kwargs)
    logger.info(
        "%s checkpoint converted with TransformerLens' table for %s at its own sizes", architecture, template.model_name
    )
    return dataclasses.replace(template, **overlay(hf_config, mapped))


def _sizes_text(sizes: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sizes.items() if v is not None)


def _tl_version() -> str:
    from importlib.metadata import version

    return version("transformer-lens")


def check_state_dict(model, state_dict: dict, folding: bool) -> None:
    """Raise ModelLoadError when converted weights have names or shapes the model does not.

    TransformerLens loads weight by weight with ``strict=False``, so a misnamed weight would be
    dropped silently. Dropping is harmless for an all-zero tensor (converters emit zero biases
    some modules lack) and for the norms' weights when folding (the fold consumes them).
    """
    expected = model.state_dict()
    folded = re.compile(r"(^|\.)ln[^.]*\.[wb]$") if folding else None
    unexpected = sorted(
        k
        for k, v in state_dict.items()
        if k not in expected and not (folded and folded.search(k)) and bool(v.detach().abs().sum() > 0)
    )
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if unexpected or wrong:
        detail = "; ".join([*(f"unexpected {k}" for k in unexpected[:3]), *wrong[:3]])
        raise ModelLoadError(
            f"TransformerLens' converted weights do not fit its {model.cfg.original_architecture} model ({detail})"
        )


def from_hf(source: str, name: str | None, settings, device: str, dtype: torch.dtype, processing: dict):
    """Load the checkpoint directory ``source`` as a processed ``HookedTransformer``.

    ``name`` is the official name it was found under (None for a plain directory): TransformerLens'
    configuration of that name is tried first.
    """
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        hf_config = AutoConfig.from_pretrained(source, local_files_only=True)
        hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(
            f"could not read the Hugging Face checkpoint {source} ({type(err).__name__}: {first_line(err)}); it needs "
            "config.json, model.safetensors (or pytorch_model.bin) and the tokenizer files"
        ) from err
    cfg = tl_config(hf_config, name, settings, fold_ln=processing["fold_ln"], device=device, dtype=dtype)
    cfg.model_name = name.rsplit("/", 1)[-1] if name else Path(source).name
    cfg.tokenizer_name = source
    processing = processing_for(cfg, **processing)
    try:
        state_dict = loading.get_pretrained_state_dict(name or source, cfg, hf_model, dtype=dtype)
        model = HookedTransformer(cfg, tokenizer, move_to_device=False)
        check_state_dict(model, state_dict, folding=processing["fold_ln"])
        model.load_and_process_state_dict(state_dict, **processing)
    except ModelLoadError:
        raise
    except Exception as err:
        raise ModelLoadError(
            f"TransformerLens {_tl_version()} could not convert this {cfg.original_architecture} checkpoint's weights "
            f"({type(err).__name__}: {first_line(err)})"
        ) from err
    model.move_model_modules_to_device()
    return model.eval()


def first_line(err: Exception) -> str:
    """The first line of an exception's message (TransformerLens and transformers write several)."""
    return (str(err).strip().splitlines() or [""])[0]
