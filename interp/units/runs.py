"""The units comparison from trained run directories: what ``interp units`` runs.

:func:`run` loads the model, a transcoder run (``interp transcoder train``) and codebook
runs (``interp codebook train --freeze-model true``), draws the tokens and classes
(:func:`interp.units.labelled_data`) and returns :func:`interp.units.compare_units`'s
:class:`~interp.units.result.UnitsComparison`; ``result.write(cfg.out)`` saves
``units.json`` and ``units.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from interp.config import check_ctx_len, check_positive
from interp.units.compare import UnitsConfig
from interp.units.result import UnitsComparison


@dataclass
class UnitsRunConfig:
    """Compare a model's MLP neurons, transcoder latents and codebook codes per layer; JSON + HTML report."""

    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    transcoders: str | None = None
    """Run directory of `interp transcoder train` (its layers get a transcoder row)."""
    codebooks: list[str] = field(default_factory=list)
    """Run directories of `interp codebook train` at mlp_out with the model frozen (one or more)."""
    layers: str | None = None
    """Layers to compare, e.g. '0-3' or 'all' (default: the layers with a transcoder or codebook)."""
    n_contexts: int = 128
    """Contexts the comparison runs on (the same tokens for every measure and kind)."""
    ctx_len: int | None = None
    """Context length (default: the model's n_ctx)."""
    data: str = "reference"
    """Token source: 'reference' (labelled corpus; as plain text for other tokenizers), a .txt/.jsonl file or a Hugging Face dataset name."""
    dataset: str | None = None
    """Deprecated: the old name of --data."""
    seed: int = 1
    """Seed of the token sample (keep it apart from the training seeds)."""
    out: str = "runs/units/report"
    """Directory for units.json and units.html."""
    device: str | None = None
    """'cpu' or 'cuda' (default: CUDA when available)."""
    measure: UnitsConfig = field(default_factory=UnitsConfig)
    """How to measure (recall, neuron threshold, ...)."""

    def __post_init__(self) -> None:
        from interp.data import data_option

        self.data, self.dataset = data_option(self.data, self.dataset), None
        if isinstance(self.measure, dict):
            self.measure = UnitsConfig(**self.measure)
        check_positive(n_contexts=self.n_contexts)
        check_ctx_len(self.ctx_len)


def run(cfg: UnitsRunConfig, *, model=None) -> UnitsComparison:
    """Run the comparison ``cfg`` describes (``model``: an already loaded model to use instead of
    ``cfg.model``). Writes nothing: ``result.write(cfg.out)`` saves ``units.json`` and ``units.html``."""
    from interp.config import parse_layers
    from interp.models import check_context, default_device, load_model
    from interp.transcoders import load_run
    from interp.units.compare import compare_units
    from interp.units.data import labelled_data, load_codebooks

    device = cfg.device or default_device()
    model = model if model is not None else load_model(cfg.model, device=device)
    if cfg.ctx_len is not None:
        check_context(model, cfg.ctx_len)
    transcoders = load_run(cfg.transcoders, device=device) if cfg.transcoders else {}
    books = load_codebooks(cfg.codebooks, device=device, model=model) if cfg.codebooks else None
    layers = parse_layers(cfg.layers, model.cfg.n_layers) if cfg.layers else None
    data = labelled_data(model, cfg.n_contexts, cfg.ctx_len, seed=cfg.seed, data=cfg.data)
    result = compare_units(model, data.tokens, data.classes, layers=layers, transcoders=transcoders, codebooks=books,
                           groups=data.groups, cfg=cfg.measure, model_name=cfg.model)
    result.metadata.update({"classes": data.source, "transcoders": cfg.transcoders, "codebooks": list(cfg.codebooks)})
    return result


def compare_runs(cfg: UnitsRunConfig, *, model=None) -> tuple[UnitsComparison, Path]:
    """Deprecated: :func:`run`, then ``result.write(cfg.out)``; returns ``(result, out)``."""
    from interp._deprecation import warn

    warn("compare_runs", "interp.units.run(cfg) and result.write(cfg.out)")
    result = run(cfg, model=model)
    result.write(cfg.out)
    return result, Path(cfg.out)


__all__ = ["UnitsRunConfig", "compare_runs", "run"]
