"""``interp neurons decode``, ``interp neurons clamp`` and ``interp sparsity``.

Each command builds its config, calls the public functions a notebook would call
(:func:`interp.neurons.decode`, :func:`interp.neuron_clamp.clamp_test`,
:func:`interp.sparsity.measure`, ...) and writes JSON plus a self-contained HTML report
into ``--out``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from interp.cli import command
from interp.io import atomic_write_text


def _layers(text: str | None) -> list[int] | None:
    if text is None or text.strip() in ("", "all"):
        return None
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError as err:
        raise ValueError(f"layers must be integers separated by commas, e.g. '0,2', or 'all'; got {text!r}") from err


def _load(spec: str):
    from interp.models import load_model

    return load_model(spec, device="cpu")


def _prompts(model, data: str, n_prompts: int, ctx_len: int, seed: int):
    from interp.data import token_batches

    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer, so prompts cannot be built from data")
    return next(iter(token_batches(data, model.tokenizer, ctx_len=ctx_len, batch_size=n_prompts, seed=seed)))


@dataclass
class DecodeConfig:
    """Decode every MLP neuron through the final norm and the unembedding."""

    model: str = "reference"
    """'reference', 'gpt2', or a local checkpoint directory."""
    layers: str | None = None
    """Layers to decode, e.g. '0,3' (default: all)."""
    side: Literal["out", "in"] = "out"
    """'out': what each neuron writes (rows of W_out); 'in': what it reads (columns of W_in)."""
    k: int = 10
    """Top and bottom tokens kept per neuron."""
    method: Literal["certified", "exact"] = "certified"
    """'certified': bfloat16 candidates proven exact in float32; 'exact': float32 throughout."""
    class_top: int = 3
    """A neuron belongs to a semantic class when its first this-many top tokens all do."""
    out: str = "runs/neurons/decode"
    """Output directory: neurons.safetensors, neurons.json, classes.json, report.html."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if not 1 <= self.class_top <= self.k:
            raise ValueError(f"class_top must be in [1, k={self.k}], got {self.class_top}")


@command("neurons", "decode", help="top and bottom tokens of every neuron through the unembedding", config=DecodeConfig)
def _decode(cfg: DecodeConfig) -> int:
    from interp.neuron_classes import classify, semantic_classes
    from interp.neuron_reports import decode_report
    from interp.neurons import decode

    table = decode(_load(cfg.model), _layers(cfg.layers), cfg.side, cfg.k, cfg.method)
    reference = cfg.model == "reference"
    classes = classify(table, semantic_classes(tokens=reference), top=cfg.class_top, exact=reference)
    out = Path(cfg.out)
    table.save(out / "neurons.safetensors")
    atomic_write_text(out / "neurons.json", json.dumps(list(table.records())) + "\n")
    classes.save(out / "classes.json")
    atomic_write_text(out / "report.html", decode_report(table, classes=classes))
    print(f"decoded {len(table)} neurons ({cfg.side} side, k={cfg.k}) into {out}")
    print(classes.table())
    return 0


@dataclass
class ClampConfig:
    """Clamp one neuron on prompts and measure its decoded tokens' log-probability."""

    layer: int
    """Layer of the neuron."""
    neuron: int
    """Index of the neuron in its layer."""
    model: str = "reference"
    """'reference', 'gpt2', or a local checkpoint directory."""
    targets: int = 3
    """Watch the neuron's first this-many decoded (top, write-side) tokens."""
    value: float | None = None
    """Clamp value (default: twice the layer's largest activation on the prompts)."""
    n_random: int = 20
    """Random neurons of the same layer clamped for comparison."""
    data: str = "reference"
    """Prompt source: 'reference', a .txt/.jsonl path, or a Hugging Face dataset name."""
    n_prompts: int = 16
    """Prompts (rows) to average over."""
    ctx_len: int = 64
    """Tokens per prompt."""
    seed: int = 0
    """Seed of the prompts and of the random neurons."""
    out: str = "runs/neurons/clamp"
    """Output directory: clamp.json and report.html."""

    def __post_init__(self) -> None:
        if self.targets < 1 or self.n_random < 0 or self.n_prompts < 1 or self.ctx_len < 2:
            raise ValueError("targets and n_prompts must be >= 1, n_random >= 0 and ctx_len >= 2")


@command("neurons", "clamp", help="clamp a neuron and measure its decoded tokens against random neurons", config=ClampConfig)
def _clamp(cfg: ClampConfig) -> int:
    from interp.neuron_clamp import clamp_test
    from interp.neuron_reports import clamp_report
    from interp.neurons import decode

    model = _load(cfg.model)
    if not 0 <= cfg.neuron < model.cfg.d_mlp:
        raise ValueError(f"neuron must be in [0, {model.cfg.d_mlp}), got {cfg.neuron}")
    table = decode(model, cfg.layer, "out", k=cfg.targets)
    row = table.row_of(cfg.layer, cfg.neuron)
    tokens = _prompts(model, cfg.data, cfg.n_prompts, cfg.ctx_len, cfg.seed)
    result = clamp_test(model, cfg.layer, cfg.neuron, tokens, table.top_ids[row].tolist(), cfg.value, cfg.n_random, cfg.seed)
    out = Path(cfg.out)
    result.save(out / "clamp.json")
    atomic_write_text(out / "report.html", clamp_report([result]))
    print(result.summary())
    return 0


@dataclass
class SparsityConfig:
    """Measure MLP activation sparsity, top-k thresholding and CoreInfer core neurons."""

    model: str = "reference"
    """'reference', 'gpt2', or a local checkpoint directory."""
    data: str = "reference"
    """Token source: 'reference', a .txt/.jsonl path, or a Hugging Face dataset name."""
    n_batches: int = 8
    """Batches to measure densities on."""
    batch_size: int = 16
    """Contexts per batch."""
    ctx_len: int = 128
    """Tokens per context (BOS first)."""
    threshold: float = 0.1
    """Count activations above this as 'above threshold'."""
    deft_eps: float = 1e-2
    """Epsilon of the DEFT density a^2 / (a^2 + eps)."""
    ks: str | None = None
    """Top-k values for the thresholding curve, e.g. '512,128,32' (default: d_mlp / 2^i)."""
    alpha: float = 0.4
    """CoreInfer token-wise fraction of positive activations kept."""
    beta: float = 0.2
    """CoreInfer sentence-wise fraction of most frequent core neurons kept."""
    seed: int = 0
    """Seed of the token stream and of the related sentences."""
    out: str = "runs/sparsity"
    """Output directory: sparsity.json, topk.json, core.json, report.html."""

    def __post_init__(self) -> None:
        if self.n_batches < 1 or self.batch_size < 1 or self.ctx_len < 2:
            raise ValueError("n_batches and batch_size must be >= 1 and ctx_len >= 2")


@command("sparsity", help="activation density, top-k thresholding and core neurons of every MLP", config=SparsityConfig)
def _sparsity(cfg: SparsityConfig) -> int:
    from interp.core_neurons import core_similarity, related_sentences
    from interp.data import token_batches
    from interp.neuron_reports import sparsity_report
    from interp.sparsity import measure
    from interp.sparsity_topk import topk_curve

    model = _load(cfg.model)
    batches = token_batches(cfg.data, model.tokenizer, ctx_len=cfg.ctx_len, batch_size=cfg.batch_size, seed=cfg.seed)
    result = measure(model, batches, threshold=cfg.threshold, deft_eps=cfg.deft_eps, max_batches=cfg.n_batches)
    ks = _layers(cfg.ks)
    tokens = _prompts(model, cfg.data, cfg.batch_size, cfg.ctx_len, cfg.seed + 1)
    curve = topk_curve(model, tokens, ks)
    core = core_similarity(model, related_sentences(seed=cfg.seed), alpha=cfg.alpha, beta=cfg.beta)
    out = Path(cfg.out)
    result.save(out / "sparsity.json")
    curve.save(out / "topk.json")
    core.save(out / "core.json")
    atomic_write_text(out / "report.html", sparsity_report(result, curve, core))
    print(result.table())
    print(curve.table())
    print(core.table())
    return 0
