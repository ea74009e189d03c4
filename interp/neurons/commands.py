"""``interp neurons decode`` and ``interp neurons clamp``.

Each command builds its config, calls the public functions a notebook would call
(:func:`interp.neurons.decode`, :func:`interp.neurons.clamp_test`, ...) and writes JSON
plus a self-contained HTML report into ``--out``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from interp.commands import command
from interp.errors import ConfigError
from interp.io import atomic_write_text


def _layers(text: str | None) -> list[int] | None:
    if text is None or text.strip() in ("", "all"):
        return None
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError as err:
        raise ConfigError(f"layers must be integers separated by commas, e.g. '0,2', or 'all'; got {text!r}") from err


def _load(spec: str):
    from interp.models import load_model

    return load_model(spec, device="cpu")


def _prompts(model, data: str, n_prompts: int, ctx_len: int, seed: int):
    from interp.data import token_batches

    if model.tokenizer is None:
        raise ConfigError("the model has no tokenizer, so prompts cannot be built from data")
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
            raise ConfigError(f"k must be at least 1, got {self.k}")
        if not 1 <= self.class_top <= self.k:
            raise ConfigError(f"class_top must be in [1, k={self.k}], got {self.class_top}")


@command("neurons", "decode", help="top and bottom tokens of every neuron through the unembedding", config=DecodeConfig)
def _decode(cfg: DecodeConfig) -> int:
    from interp.neurons import classify, decode, decode_report, semantic_classes

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
            raise ConfigError("targets and n_prompts must be >= 1, n_random >= 0 and ctx_len >= 2")


@command("neurons", "clamp", help="clamp a neuron and measure its decoded tokens against random neurons", config=ClampConfig)
def _clamp(cfg: ClampConfig) -> int:
    from interp.neurons import clamp_report, clamp_test, decode

    model = _load(cfg.model)
    if not 0 <= cfg.neuron < model.cfg.d_mlp:
        raise ConfigError(f"neuron must be in [0, {model.cfg.d_mlp}), got {cfg.neuron}")
    table = decode(model, cfg.layer, "out", k=cfg.targets)
    row = table.row_of(cfg.layer, cfg.neuron)
    tokens = _prompts(model, cfg.data, cfg.n_prompts, cfg.ctx_len, cfg.seed)
    result = clamp_test(model, cfg.layer, cfg.neuron, tokens, table.top_ids[row].tolist(), cfg.value, cfg.n_random, cfg.seed)
    out = Path(cfg.out)
    result.save(out / "clamp.json")
    atomic_write_text(out / "report.html", clamp_report([result]))
    print(result.summary())
    return 0
