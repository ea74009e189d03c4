"""interp transcoders in EleutherAI sparsify's on-disk layout (eai-sparsify 1.3), both ways.

sparsify saves a run as one folder per hookpoint, named after the module it replaces, and
loads it with its own loaders (``SparseCoder.load_many(DIR, local=True)`` gives
``{hookpoint: SparseCoder}``; ``SparseCoder.load_from_disk(DIR/hookpoint)`` one coder). A
folder holds ``cfg.json`` (``SparseCoderConfig``'s fields plus ``d_in``) and
``sae.safetensors``. A transcoder (``transcode: true``) computes::

    sae_out = TopK_k(ReLU(x @ encoder.weight.T + encoder.bias)) @ W_dec + b_dec  (+ x @ W_skip.T)

so interp's folded weights map one to one: ``encoder.weight = W_enc.T`` ``[d_sae, d_in]``,
``encoder.bias = b_enc``, ``W_dec`` ``[d_sae, d_out]``, ``b_dec``, ``W_skip`` ``[d_out, d_in]``
(``skip_connection: true``). sparsify's coders write as wide an output as they read
(``d_out == d_in``), which MLP transcoders do.

Architectures: ``topk`` and ``skip_topk`` are sparsify's own. ``relu`` and ``skip`` are
written as TopK over all latents (``k = num_latents``): TopK of a ReLU that keeps every
latent is the ReLU, so sparsify computes the same function, only without the sparse
speed-up. JumpReLU has no sparsify equivalent and is refused. An ``interp`` key in
``cfg.json`` (sparsify drops unknown keys) keeps interp's architecture, config and hooks, so
importing the folder back restores the transcoder exactly.

Hookpoint names: a folder is named ``blocks.L.mlp``, the transformer-lens module of layer
``L``'s MLP. On a ``HookedTransformer`` processed as interp loads models (LayerNorm folded),
that module's input is ``blocks.L.ln2.hook_normalized`` and its output
``blocks.L.hook_mlp_out``: exactly what the transcoder reads and predicts, so sparsify's
hooks on the module (``model.get_submodule("blocks.L.mlp")``) splice it in as it is. A
Hugging Face model's MLP module (``h.L.mlp`` in GPT-2, ``layers.L.mlp`` in Llama) reads the
LayerNorm's output *with* its weight and bias, which interp's processed models fold into the
MLP: the values differ, so importing a coder sparsify trained on a Hugging Face hookpoint is
refused rather than run on the wrong input (docs/interop.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import torch

from interp.errors import StoreError, TranscoderLoadError
from interp.io import atomic_write, atomic_write_text
from interp.transcoders import registry
from interp.transcoders.base import Transcoder
from interp.transcoders.data import layer_hooks

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"
EXPORTABLE = ("relu", "skip", "topk", "skip_topk")
"""interp architectures sparsify can run (see the module docstring)."""
_HOOKPOINT = re.compile(r"^blocks\.(\d+)\.mlp$")


def hookpoint(layer: int) -> str:
    """sparsify's name for layer ``layer``'s MLP transcoder: the transformer-lens module ``blocks.L.mlp``."""
    return f"blocks.{layer}.mlp"


def layer_of_hookpoint(name: str) -> int:
    """The layer of a sparsify hookpoint folder ``blocks.L.mlp``; other names are refused with the reason."""
    match = _HOOKPOINT.match(name)
    if match is None:
        raise TranscoderLoadError(
            f"sparsify hookpoint {name!r} is not a transformer-lens MLP module (blocks.L.mlp). interp's transcoders read "
            "blocks.L.ln2.hook_normalized of a model with its LayerNorm folded; a Hugging Face MLP module (e.g. h.L.mlp, "
            "layers.L.mlp) reads the LayerNorm's output with its weight and bias, a different input: see docs/interop.md"
        )
    return int(match.group(1))


def check(tc: Transcoder) -> None:
    """Raise :class:`StoreError` unless sparsify can run ``tc``."""
    if tc.arch not in EXPORTABLE:
        raise StoreError(
            f"sparsify has no {tc.arch} transcoder: its coders are TopK of a ReLU, so it runs {', '.join(EXPORTABLE)} "
            "(relu and skip as TopK over all latents); export this run for SAELens instead (--format saelens)"
        )
    if tc.d_in != tc.d_out:
        raise StoreError(f"sparsify's coders write as many dims as they read; this transcoder maps {tc.d_in} -> {tc.d_out}")


def save(tc: Transcoder, directory: str | Path) -> Path:
    """Write ``tc`` (normalisation folded) to ``directory`` as sparsify's ``SparseCoder.save_to_disk`` does."""
    from safetensors.torch import save_file

    check(tc)
    folded = tc.folded()
    tensors = {
        "encoder.weight": folded.W_enc.T,
        "encoder.bias": folded.b_enc,
        "W_dec": folded.W_dec,
        "b_dec": folded.b_dec,
    }
    if folded.has_skip:
        tensors["W_skip"] = folded.W_skip
    cfg = {
        "activation": "topk",
        "expansion_factor": max(1, tc.d_sae // tc.d_in),
        "normalize_decoder": False,
        "num_latents": tc.d_sae,
        "k": getattr(tc.cfg, "k", tc.d_sae),
        "multi_topk": False,
        "skip_connection": tc.has_skip,
        "transcode": True,
        "d_in": tc.d_in,
        "interp": {
            "architecture": tc.arch,
            "config": asdict(tc.cfg),
            "hook_name": tc.hook_name,
            "hook_name_out": tc.hook_name_out,
        },
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_write(directory / WEIGHTS_FILE) as tmp:
        save_file({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    atomic_write_text(directory / CFG_FILE, json.dumps(cfg, indent=2) + "\n")
    return directory


def load(directory: str | Path, device: str | torch.device = "cpu") -> Transcoder:
    """An interp transcoder from a sparsify coder folder (one written by :func:`save`, or a
    transcoder sparsify trained on a ``blocks.L.mlp`` hookpoint)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / CFG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise StoreError(f"{directory} is not a sparsify coder folder (expected {CFG_FILE} and {WEIGHTS_FILE})")
    cfg = json.loads((directory / CFG_FILE).read_text())
    state = load_file(str(directory / WEIGHTS_FILE))
    record = cfg.get("interp")
    if record is not None:
        arch = registry.get(record["architecture"])
        tc = arch.transcoder(arch.config(**record["config"]))
        hooks = (record.get("hook_name"), record.get("hook_name_out"))
    else:
        if not cfg.get("transcode", False):
            raise TranscoderLoadError(
                f"{directory} is a sparse autoencoder (transcode: false), not a transcoder: it reconstructs its input"
            )
        if cfg.get("activation", "topk") != "topk":
            raise TranscoderLoadError(f"{directory} uses sparsify's {cfg['activation']!r} activation; interp runs TopK")
        d_sae, d_in = state["encoder.weight"].shape
        arch = registry.get("skip_topk" if cfg.get("skip_connection") else "topk")
        tc = arch.transcoder(arch.config(d_in=d_in, d_out=d_in, d_sae=d_sae, k=int(cfg["k"])))
        hooks = layer_hooks(layer_of_hookpoint(directory.name))
    expected = {"encoder.weight", "encoder.bias", "W_dec", "b_dec"} | ({"W_skip"} if tc.has_skip else set())
    if set(state) != expected:
        raise StoreError(f"{directory / WEIGHTS_FILE} holds {sorted(state)}, expected {sorted(expected)}")
    with torch.no_grad():
        tc.W_enc.copy_(state["encoder.weight"].T)
        tc.b_enc.copy_(state["encoder.bias"])
        tc.W_dec.copy_(state["W_dec"])
        tc.b_dec.copy_(state["b_dec"])
        if tc.has_skip:
            tc.W_skip.copy_(state["W_skip"])
    tc.hook_name, tc.hook_name_out = hooks
    return tc.to(device).eval()


def save_run(transcoders: dict[int, Transcoder], out: str | Path) -> dict[int, Path]:
    """Write ``{layer: transcoder}`` as a sparsify run folder (``out/blocks.L.mlp``); the folder
    sparsify's ``SparseCoder.load_many(out, local=True)`` reads."""
    for tc in transcoders.values():  # every one, before anything is written
        check(tc)
    out = Path(out)
    return {layer: save(tc, out / hookpoint_of(tc)) for layer, tc in sorted(transcoders.items())}


def load_run(path: str | Path, device: str | torch.device = "cpu") -> dict[int, Transcoder]:
    """``{layer: transcoder}`` of a sparsify run folder (one sub-folder per hookpoint) or of one coder folder."""
    path = Path(path)
    if (path / CFG_FILE).is_file():
        folders = [path]
    else:
        folders = sorted(p for p in path.iterdir() if (p / CFG_FILE).is_file()) if path.is_dir() else []
    if not folders:
        raise TranscoderLoadError(f"{path} holds no sparsify coders (folders with {CFG_FILE} and {WEIGHTS_FILE})")
    out: dict[int, Transcoder] = {}
    for folder in folders:
        tc = load(folder, device)
        layer = layer_of_hookpoint(hookpoint_of(tc))
        if layer in out:
            raise TranscoderLoadError(f"{path} holds two transcoders for layer {layer}; keep one per layer")
        out[layer] = tc
    return dict(sorted(out.items()))


def hookpoint_of(tc: Transcoder) -> str:
    """The sparsify hookpoint of a transcoder that reads and writes one layer's MLP."""
    from interp.hooks import layer_of

    layer = layer_of(tc.hook_name or "")
    if layer is not None and (tc.hook_name, tc.hook_name_out) == layer_hooks(layer, "resid_mid"):
        raise TranscoderLoadError(
            f"the transcoder reads {tc.hook_name!r}, the MLP's input in a post-norm block (OLMo 2), where the module "
            f"{hookpoint(layer)} outputs the MLP before ln2 normalises it into {tc.hook_name_out!r}: sparsify's hooks on "
            "that module would splice it in at the wrong place; use --format saelens"
        )
    if layer is None or (tc.hook_name, tc.hook_name_out) != layer_hooks(layer):
        raise TranscoderLoadError(
            f"the transcoder reads {tc.hook_name!r} and writes {tc.hook_name_out!r}: not one layer's MLP input -> output"
        )
    return hookpoint(layer)


__all__ = ["EXPORTABLE", "check", "hookpoint", "hookpoint_of", "layer_of_hookpoint", "load", "load_run", "save", "save_run"]
