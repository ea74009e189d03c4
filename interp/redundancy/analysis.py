"""The full redundancy analysis of one model: :func:`analyze` and :func:`run`.

:func:`analyze` measures importance, the loss increase of dropping each module alone
(and whether the importance ranking predicts it: Spearman rank correlation), and one drop
curve per (strategy, schedule), on a model and token tensors a notebook already holds.
:func:`run` does the same from a :class:`RedundancyConfig` (loading the model and data):
what ``interp redundancy`` calls. Both return a :class:`~interp.redundancy.result.RedundancyResult`
and write nothing; ``result.write(out)`` saves ``redundancy.json`` and ``redundancy.html``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor

from interp.config import check_ctx_len, check_positive
from interp.errors import ConfigError
from interp.redundancy.dropping import SCHEDULES, STRATEGIES, ablated, drop_curve, heldout_loss, speedup
from interp.redundancy.importance import KINDS, METRICS, Importance, Module, importance, spearman
from interp.redundancy.result import RedundancyResult

logger = logging.getLogger(__name__)


@dataclass
class RedundancyConfig:
    """Rank a model's attention layers, MLPs and blocks by redundancy and measure what dropping them costs."""

    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    data: str = "reference"
    """Token source: 'reference' (the offline corpus; as plain text for other tokenizers), a .txt/.jsonl path, or a Hugging Face dataset name."""
    ctx_len: int | None = None
    """Tokens per sequence (BOS first); default 128, or the model's context where that is shorter."""
    n_calibration: int = 64
    """Sequences the importance is measured on."""
    n_heldout: int = 64
    """Held-out sequences the loss is measured on (drawn after the calibration ones, never overlapping)."""
    batch_size: int = 16
    """Sequences per forward pass; results do not depend on it."""
    include_bos: bool = True
    """Count BOS tokens in the importance average (LLM-Drop does)."""
    metric: Literal["residual", "output"] = "residual"
    """Which importance ranks modules: 'residual' (1 - cos(input, input + output)) or 'output' (1 - cos(normalised input, output))."""
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    """Which modules to drop: attn, mlp, block, joint (attention and MLP ranked together)."""
    schedules: list[str] = field(default_factory=lambda: list(SCHEDULES))
    """one-shot (rank once) and/or iterative (re-rank after each drop)."""
    max_drop: int | None = None
    """Drop at most this many modules per curve (all of them when unset)."""
    tasks: bool | None = None
    """Measure the reference model's task metrics at each point (default: only for the reference model)."""
    n_task_prompts: int = 256
    """Prompts per task when measuring task metrics."""
    timing_batch: int = 8
    """Sequences in the batch used to time forward passes; 0 turns timing off."""
    timing_repeats: int = 5
    """Timed forward passes per point (the fastest is kept)."""
    seed: int = 0
    """Seed of the token stream."""
    device: str | None = None
    """'cpu', 'cuda', ... (default: CUDA when available)."""
    out: str = "redundancy"
    """Directory for redundancy.json and redundancy.html."""
    progress: bool = True
    """Show progress bars over the single drops and the drop curves."""

    def __post_init__(self) -> None:
        check_positive(**{name: getattr(self, name) for name in (
            "ctx_len", "n_calibration", "n_heldout", "batch_size", "n_task_prompts", "timing_repeats", "max_drop")})
        check_ctx_len(self.ctx_len)
        if self.timing_batch < 0:
            raise ConfigError(f"--timing-batch must be at least 0 (0 turns timing off), got {self.timing_batch}")
        if self.metric not in METRICS:
            raise ConfigError(f"--metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        for value in self.strategies:
            if value not in STRATEGIES:
                raise ConfigError(f"--strategies: unknown strategy {value!r}; choose from {', '.join(STRATEGIES)}")
        for value in self.schedules:
            if value not in SCHEDULES:
                raise ConfigError(f"--schedules: unknown schedule {value!r}; choose from {', '.join(SCHEDULES)}")


def rank_correlations(imp: Importance, baseline: float, single: dict[str, float], n_layers: int) -> dict[str, dict[str, float]]:
    """Spearman(importance, loss increase) for attn, mlp, block and joint (attn + mlp)."""
    groups = {"attn": ("attn",), "mlp": ("mlp",), "block": ("block",), "joint": ("attn", "mlp")}
    out: dict[str, dict[str, float]] = {}
    for group, kinds in groups.items():
        modules = [Module(k, layer) for k in kinds for layer in range(n_layers)]
        increase = [single[str(m)] - baseline for m in modules]
        out[group] = {metric: spearman([imp.score(m, metric) for m in modules], increase) for metric in METRICS}
    return out


def analyze(
    model,
    calibration: Int[Tensor, "n pos"],
    heldout: Int[Tensor, "m pos"],
    strategies: Sequence[str] = STRATEGIES,
    schedules: Sequence[str] = SCHEDULES,
    metric: str = "residual",
    batch_size: int | None = None,
    include_bos: bool = True,
    bos_token_id: int | None = None,
    max_drop: int | None = None,
    tasks: Callable[[object], dict[str, float]] | None = None,
    timing_tokens: Int[Tensor, "batch pos"] | None = None,
    timing_repeats: int = 5,
    name: str | None = None,
    progress: bool = True,
) -> RedundancyResult:
    """Importance, single-drop losses, rank correlations and drop curves of ``model``.

    ``progress`` shows bars over the single drops and the drop curves (notebook bars in
    Jupyter, text in a terminal).
    """
    from tqdm.auto import tqdm

    common = {"batch_size": batch_size, "include_bos": include_bos, "bos_token_id": bos_token_id}
    if timing_tokens is not None:  # warm up allocators and kernels before anything is timed
        speedup(model, [], timing_tokens, repeats=2)
    imp = importance(model, calibration, **common)
    baseline = heldout_loss(model, heldout, batch_size)
    with torch.no_grad():
        baseline_tasks = tasks(model) if tasks is not None else None
    single = {}
    singles = [Module(kind, layer) for kind in KINDS for layer in range(model.cfg.n_layers)]
    for module in tqdm(singles, desc="single drops", disable=not progress, leave=False):
        with ablated(model, [module]):
            single[str(module)] = heldout_loss(model, heldout, batch_size)
    memo: dict = {}
    curves = []
    jobs = [(s, sch) for s in strategies for sch in schedules]
    for strategy, schedule in tqdm(jobs, desc="drop curves", disable=not progress):
        curves.append(
            drop_curve(
                model, calibration, heldout, strategy, schedule, metric, max_drop=max_drop, tasks=tasks,
                timing_tokens=timing_tokens, timing_repeats=timing_repeats, memo=memo, **common,
            )
        )
    return RedundancyResult(
        model=name or model.cfg.model_name,
        n_layers=model.cfg.n_layers,
        n_calibration_tokens=imp.n_tokens,
        n_heldout_tokens=int(heldout.shape[0] * (heldout.shape[1] - 1)),
        metric=metric,
        importance=imp,
        baseline_loss=baseline,
        baseline_tasks=baseline_tasks,
        single_drop_loss=single,
        rank_correlation=rank_correlations(imp, baseline, single, model.cfg.n_layers),
        curves=curves,
        notes=list(imp.notes),
        settings={"strategies": list(strategies), "schedules": list(schedules), "include_bos": include_bos,
                  "batch_size": batch_size, "timing_repeats": timing_repeats,
                  "timing_shape": list(timing_tokens.shape) if timing_tokens is not None else None,
                  "device": str(model.cfg.device)},
    )


def load_tokens(model, source: str, ctx_len: int | None, n: int, seed: int) -> Tensor:
    """The first ``n`` BOS-led sequences of ``source`` as one ``(n, ctx_len)`` tensor
    (:func:`interp.data.load_contexts`; :class:`~interp.errors.DataError` when it holds fewer).
    ``ctx_len`` None: 128, or the model's context where that is shorter; a ``ctx_len`` longer
    than the model's context is refused (:class:`~interp.errors.ConfigError`), never cut short."""
    from interp.data import load_contexts
    from interp.models import check_context

    if model.tokenizer is None:
        raise ConfigError("the model has no tokenizer; pass token tensors to interp.redundancy.analyze instead")
    if ctx_len is None:
        ctx_len = min(128, model.cfg.n_ctx)
    check_context(model, ctx_len)
    return load_contexts(source, model.tokenizer, n, ctx_len, seed=seed)


def reference_tasks(n_prompts: int) -> Callable[[object], dict[str, float]]:
    """The reference model's task metrics as a ``tasks`` callback (metric name -> value)."""
    from interp.reference.tasks import evaluate

    return lambda model: evaluate(model, n_prompts=n_prompts).metrics()


def run(cfg: RedundancyConfig) -> RedundancyResult:
    """Load ``cfg.model`` and its data and run :func:`analyze`: what ``interp redundancy`` runs.

    Writes nothing and leaves torch's global settings alone (``interp --threads N`` sets the
    thread count for the command line; in Python call ``torch.set_num_threads`` yourself).
    ``result.write(cfg.out)`` saves ``redundancy.json`` and ``redundancy.html``.
    """
    from interp.models import load_model

    model = load_model(cfg.model, device=cfg.device)
    tokens = load_tokens(model, cfg.data, cfg.ctx_len, cfg.n_calibration + cfg.n_heldout, cfg.seed)
    calibration, heldout = tokens[: cfg.n_calibration], tokens[cfg.n_calibration :]
    use_tasks = cfg.model == "reference" if cfg.tasks is None else cfg.tasks
    if use_tasks and cfg.model != "reference" and "reference" not in str(model.cfg.model_name):
        from interp.errors import RedundancyError

        raise RedundancyError(f"task metrics exist only for the reference model, not {cfg.model!r}; drop --tasks")
    timing = heldout[: cfg.timing_batch] if cfg.timing_batch else None
    result = analyze(
        model, calibration, heldout, cfg.strategies, cfg.schedules, cfg.metric, cfg.batch_size, cfg.include_bos,
        max_drop=cfg.max_drop, tasks=reference_tasks(cfg.n_task_prompts) if use_tasks else None,
        timing_tokens=timing, timing_repeats=cfg.timing_repeats, name=cfg.model, progress=cfg.progress,
    )
    result.settings.update({"data": cfg.data, "ctx_len": int(tokens.shape[1]), "seed": cfg.seed})
    return result


__all__ = ["RedundancyConfig", "analyze", "load_tokens", "rank_correlations", "reference_tasks", "run"]
