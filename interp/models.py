"""Loading models: GPT-2 small, a local Hugging Face checkpoint, or the reference model.

``load_model(spec)`` returns a transformer-lens ``HookedTransformer`` with the weights
processed as ``HookedTransformer.from_pretrained`` does by default (LayerNorm folded,
writing weights and unembedding centred), so that hook points mean the same thing for
every model the toolkit handles.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.errors import ModelLoadError

logger = logging.getLogger(__name__)

GPT2_ALIASES = {"gpt2", "gpt2-small"}
GPT2_REPOS = ("openai-community/gpt2", "gpt2")
HUB_HOST = "huggingface.co"
HUB_PROBE_TIMEOUT_S = 3.0


@contextlib.contextmanager
def quiet_transformer_lens() -> Iterator[None]:
    """Send what transformer-lens prints while loading to the debug log (the library never prints)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    if buffer.getvalue().strip():
        logger.debug("transformer-lens: %s", buffer.getvalue().strip())


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    spec: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
):
    """Load a model as a transformer-lens ``HookedTransformer``.

    Args:
        spec: ``"reference"`` (the bundled offline model), ``"gpt2"`` / ``"gpt2-small"``
            (from the local Hugging Face cache, or the hub when it is reachable), or a
            local directory: a Hugging Face GPT-2-style checkpoint (``config.json``,
            weights, tokenizer files) or a directory written by interp.
        device: defaults to CUDA when available, else CPU.
        dtype: e.g. ``torch.float32`` or ``"bfloat16"``; defaults to float32.
        fold_ln: fold each LayerNorm's weight and bias into the next weights
            (transformer-lens processing, on by default as in ``from_pretrained``).
        center_writing_weights: centre the weights that write to the residual stream.
        center_unembed: centre the unembedding (logits shift by a constant per position).

    Raises:
        ModelLoadError: the model could not be found; the message lists what was tried.
    """
    with quiet_transformer_lens():
        return _load(spec, device, dtype, fold_ln, center_writing_weights, center_unembed)


def _load(spec, device, dtype, fold_ln: bool, center_writing_weights: bool, center_unembed: bool):
    device = str(device) if device is not None else default_device()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    processing = {
        "fold_ln": fold_ln,
        "center_writing_weights": center_writing_weights,
        "center_unembed": center_unembed,
    }
    name = str(spec)
    if name == "reference":
        from interp.reference.model import load

        return load(device=device, dtype=dtype, **processing)
    if name.lower() in GPT2_ALIASES:
        return _load_gpt2(device, dtype, processing)
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_directory(path, device, dtype, processing)
    raise ModelLoadError(
        f"unknown model {name!r}: pass 'reference', 'gpt2' (or 'gpt2-small'), or the path of a "
        "local directory holding a Hugging Face GPT-2-style checkpoint (config.json, weights, "
        "tokenizer files)"
    )


def _load_directory(path: Path, device: str, dtype, processing: dict):
    config = path / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"{path} has no config.json; it is not a model checkpoint directory")
    import json

    content = json.loads(config.read_text())
    if "d_model" in content and "n_layers" in content:
        from interp.reference.model import load

        return load(path, device=device, dtype=dtype, **processing)
    return _load_hf_checkpoint(path, device, dtype, processing)


def _load_hf_checkpoint(path: Path, device: str, dtype, processing: dict):
    """A local Hugging Face checkpoint, converted by transformer-lens without the hub."""
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"could not read the Hugging Face checkpoint in {path}: {err}. The directory needs "
            "config.json, model.safetensors (or pytorch_model.bin) and the tokenizer files "
            "(tokenizer.json, or vocab.json and merges.txt)."
        ) from err
    torch_dtype = dtype if dtype is not None else torch.float32
    cfg = loading.get_pretrained_model_config(
        str(path), hf_cfg=hf_model.config.to_dict(), fold_ln=processing["fold_ln"], device=device, dtype=torch_dtype
    )
    state_dict = loading.get_pretrained_state_dict(str(path), cfg, hf_model, dtype=torch_dtype)
    model = HookedTransformer(cfg, tokenizer, move_to_device=False)
    model.load_and_process_state_dict(state_dict, **processing)
    model = model.to(device)
    model.eval()
    return model


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_gpt2() -> Path | None:
    """The local Hugging Face cache's snapshot of GPT-2, if one is complete there."""
    from huggingface_hub import snapshot_download

    for repo in GPT2_REPOS:
        try:
            snapshot = Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # noqa: BLE001 - any miss means "not cached"
            continue
        has_weights = any((snapshot / f).is_file() for f in ("model.safetensors", "pytorch_model.bin"))
        if (snapshot / "config.json").is_file() and has_weights:
            return snapshot
    return None


def gpt2_available() -> bool:
    """True when GPT-2 small's weights are on this machine (cache or ``INTERP_GPT2_PATH``)."""
    local = os.environ.get("INTERP_GPT2_PATH")
    if local and Path(local).is_dir():
        return True
    return _cached_gpt2() is not None


def _load_gpt2(device: str, dtype, processing: dict):
    tried = []
    local = os.environ.get("INTERP_GPT2_PATH")
    if local:
        if Path(local).is_dir():
            return _load_hf_checkpoint(Path(local), device, dtype, processing)
        tried.append(f"INTERP_GPT2_PATH={local}: not a directory")
    snapshot = _cached_gpt2()
    if snapshot is not None:
        logger.info("loading GPT-2 small from the local cache at %s", snapshot)
        return _load_hf_checkpoint(snapshot, device, dtype, processing)
    from huggingface_hub import constants

    tried.append(f"the Hugging Face cache at {constants.HF_HUB_CACHE}: no complete copy of {' or '.join(GPT2_REPOS)}")
    offline = constants.HF_HUB_OFFLINE
    if not offline and _hub_reachable():
        from transformer_lens import HookedTransformer

        logger.info("downloading GPT-2 small from the Hugging Face hub")
        model = HookedTransformer.from_pretrained("gpt2", device=device, dtype=dtype or torch.float32, **processing)
        model.eval()
        return model
    tried.append("HF_HUB_OFFLINE is set" if offline else f"the hub ({HUB_HOST}:443): unreachable within {HUB_PROBE_TIMEOUT_S:.0f} s")
    raise ModelLoadError(
        "could not load GPT-2 small. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nFix it in one of these ways:\n"
        "  - pass a local directory with the checkpoint: load_model('/path/to/gpt2') "
        "(config.json, model.safetensors, tokenizer files), or set INTERP_GPT2_PATH to it;\n"
        "  - point HF_HOME (or HF_HUB_CACHE) at a Hugging Face cache that holds openai-community/gpt2;\n"
        "  - run once where the hub is reachable, so the weights are cached;\n"
        "  - or use the offline reference model: load_model('reference')."
    )


@dataclass
class ModelInfo:
    """A model's architecture and the hook points interp uses."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int | None
    d_vocab: int
    n_ctx: int
    act_fn: str | None
    normalization: str | None
    n_params: int
    sites: dict[str, list[str]]

    def describe(self) -> str:
        lines = [
            f"{self.name}: {self.n_layers} layers, d_model {self.d_model}, {self.n_heads} heads x d_head {self.d_head}, "
            f"d_mlp {self.d_mlp}, vocabulary {self.d_vocab}, context {self.n_ctx}",
            f"activation {self.act_fn}, normalization {self.normalization}, {self.n_params:,} parameters",
            "hook points (site: layer 0 ... last layer):",
        ]
        for site, names in self.sites.items():
            if names:
                shown = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"
                lines.append(f"  {site:13s} {shown}")
        return "\n".join(lines)


def model_info(model) -> ModelInfo:
    """Describe a HookedTransformer: its shape and its validated hook points per site."""
    from interp.hooks import all_sites

    cfg = model.cfg
    return ModelInfo(
        name=cfg.model_name,
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        act_fn=cfg.act_fn,
        normalization=cfg.normalization_type,
        n_params=sum(p.numel() for p in model.parameters()),
        sites=all_sites(model),
    )
