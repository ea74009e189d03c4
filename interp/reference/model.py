"""The reference model's architecture, its bundled weights, and loading them.

A GPT-2-architecture transformer (LayerNorm, ``gelu_new``, learned positions) in
transformer-lens: 4 layers, d_model 128, 4 heads, d_mlp 512, context 128, over the
closed vocabulary of :mod:`interp.reference.vocab`. The trained weights ship as package
data in ``interp/reference/weights/``: ``model.safetensors`` (unprocessed weights),
``config.json`` and ``tokenizer.json``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from interp.errors import ModelLoadError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def architecture(d_vocab: int) -> dict:
    """The reference model's transformer-lens config, as plain data."""
    return {
        "model_name": "interp-reference",
        "n_layers": 4,
        "d_model": 128,
        "n_heads": 4,
        "d_head": 32,
        "d_mlp": 512,
        "n_ctx": 128,
        "d_vocab": d_vocab,
        "act_fn": "gelu_new",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "original_architecture": "GPT2LMHeadModel",
        "tokenizer_prepends_bos": True,
        "default_prepend_bos": True,
    }


def weights_dir() -> Path:
    """The directory of the bundled reference weights (package data)."""
    return Path(str(resources.files("interp.reference") / "weights"))


def build(config: dict, tokenizer, seed: int | None = None, device: str | torch.device | None = None):
    """A freshly initialised HookedTransformer with the reference architecture."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(**config, seed=seed, device=str(device) if device is not None else "cpu")
    return HookedTransformer(cfg, tokenizer=tokenizer)


def save(model, directory: str | Path) -> Path:
    """Write ``model``'s weights, config and tokenizer to ``directory`` atomically."""
    from safetensors.torch import save_file

    from interp.io import atomic_write

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_write(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    config = architecture(model.cfg.d_vocab)
    with atomic_write(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")
    with atomic_write(directory / "tokenizer.json") as tmp:
        model.tokenizer.backend_tokenizer.save(str(tmp))
    return directory


def save_untrained(directory: str | Path, seed: int = 0) -> Path:
    """Write a freshly initialised model of the reference architecture (with the reference
    tokenizer) to ``directory``, where ``load_model(directory)`` reads it: a stand-in with the
    right shapes for smoke tests and ``--random-init`` runs."""
    from interp.reference.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    return save(build(architecture(len(tokenizer)), tokenizer, seed=seed), directory)


def load(
    directory: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
):
    """Load the reference model (bundled weights unless ``directory`` is given).

    The weights are processed as transformer-lens' ``from_pretrained`` processes GPT-2
    by default (LayerNorm folded, writing weights and unembedding centred), so hook
    semantics match a ``from_pretrained("gpt2")`` model.
    """
    from safetensors.torch import load_file

    from interp.reference.tokenizer import load_tokenizer

    from interp.io import require_complete

    directory = Path(directory) if directory is not None else weights_dir()
    require_complete(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(
            f"no reference weights at {weights}. Train them with `interp reference train "
            f"--out {directory}` or reinstall interp (the weights ship as package data)."
        )
    config = json.loads((directory / CONFIG_FILE).read_text())
    tokenizer = load_tokenizer(directory)
    model = build(config, tokenizer, device=device)
    state = load_file(str(weights), device=str(device) if device is not None else "cpu")
    model.load_and_process_state_dict(
        state,
        fold_ln=fold_ln,
        center_writing_weights=center_writing_weights,
        center_unembed=center_unembed,
    )
    if dtype is not None:
        model = model.to(dtype)
    model.eval()
    return model
