"""The full redundancy analysis of one model, its result object and its HTML report.

:func:`analyze` measures importance, the loss increase of dropping each module alone
(and whether the importance ranking predicts it: Spearman rank correlation), and one drop
curve per (strategy, schedule). :func:`run` does the same from a :class:`RedundancyConfig`
(loading the model and data), which is what ``interp redundancy`` calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import ConfigError
from interp.redundancy.dropping import SCHEDULES, STRATEGIES, DropCurve, ablated, drop_curve, heldout_loss, speedup
from interp.redundancy.importance import KINDS, METRICS, Importance, Module, importance, spearman

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass
class RedundancyConfig:
    """Rank a model's attention layers, MLPs and blocks by redundancy and measure what dropping them costs."""

    model: str = "reference"
    """'reference', 'gpt2', or a local checkpoint directory."""
    data: str = "reference"
    """Token source: 'reference' (the offline corpus), .txt/.jsonl paths, or a Hugging Face dataset name."""
    ctx_len: int = 128
    """Tokens per sequence (BOS first)."""
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
    threads: int | None = None
    """torch CPU threads (default: torch's choice). 1 is far faster for small models on a busy machine."""
    out: str = "redundancy"
    """Directory for redundancy.json and redundancy.html."""
    progress: bool = True
    """Show progress bars over the single drops and the drop curves."""

    def __post_init__(self) -> None:
        for name in ("ctx_len", "n_calibration", "n_heldout", "batch_size", "n_task_prompts", "timing_repeats"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ctx_len < 2:
            raise ConfigError(f"ctx_len must be >= 2, got {self.ctx_len}")
        if self.timing_batch < 0:
            raise ConfigError(f"timing_batch must be >= 0, got {self.timing_batch}")
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {METRICS}, got {self.metric!r}")
        for value in self.strategies:
            if value not in STRATEGIES:
                raise ConfigError(f"unknown strategy {value!r}; choose from {STRATEGIES}")
        for value in self.schedules:
            if value not in SCHEDULES:
                raise ConfigError(f"unknown schedule {value!r}; choose from {SCHEDULES}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 when set, got {self.threads}")
        if self.max_drop is not None and self.max_drop < 1:
            raise ConfigError(f"max_drop must be >= 1 when set, got {self.max_drop}")


@dataclass
class RedundancyReport:
    """Everything :func:`analyze` measured on one model."""

    model: str
    n_layers: int
    n_calibration_tokens: int
    n_heldout_tokens: int
    metric: str
    importance: Importance
    baseline_loss: float
    baseline_tasks: dict[str, float] | None
    single_drop_loss: dict[str, float]
    """Held-out loss with each module (attn.L, mlp.L, block.L) dropped alone."""
    rank_correlation: dict[str, dict[str, float]]
    """Spearman correlation of importance with the single-drop loss increase, per group and metric."""
    curves: list[DropCurve]
    settings: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def loss_increase(self, module: Module | str) -> float:
        return self.single_drop_loss[str(module)] - self.baseline_loss

    def curve(self, strategy: str, schedule: str) -> DropCurve:
        for curve in self.curves:
            if curve.strategy == strategy and curve.schedule == schedule:
                return curve
        raise KeyError(f"no curve for strategy {strategy!r} and schedule {schedule!r}")

    def most_redundant(self, kinds: Sequence[str] = ("attn", "mlp"), k: int = 3) -> list[str]:
        return [str(m) for m in self.importance.ranking(kinds, self.metric)[:k]]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["importance"] = self.importance.to_dict()
        data["curves"] = [c.to_dict() for c in self.curves]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RedundancyReport:
        data = dict(data)
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"unsupported redundancy report schema {data.get('schema_version')!r}; expected {SCHEMA_VERSION}")
        data["importance"] = Importance.from_dict(data["importance"])
        data["curves"] = [DropCurve.from_dict(c) for c in data["curves"]]
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically)."""
        from interp.io import atomic_write_json

        return atomic_write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> RedundancyReport:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def summary(self) -> str:
        lines = [f"{self.model}: baseline held-out loss {self.baseline_loss:.4f}", self.importance.table(), ""]
        lines.append(f"{'module':>8s} {'importance':>11s} {'loss increase':>14s}")
        for kind in KINDS:
            for layer in range(self.n_layers):
                m = Module(kind, layer)
                lines.append(f"{str(m):>8s} {self.importance.score(m, self.metric):11.5f} {self.loss_increase(m):14.4f}")
        lines.append("Spearman(importance, loss increase): " + ", ".join(
            f"{group} {values[self.metric]:+.3f}" for group, values in self.rank_correlation.items()
        ))
        for curve in self.curves:
            losses = " ".join(f"{p.loss:.3f}" for p in curve.points)
            lines.append(f"{curve.strategy:5s} {curve.schedule:9s} order {','.join(curve.order)}  loss {losses}")
        return "\n".join(lines)

    def to_html(self) -> str:
        from interp.redundancy.html import render

        return render(self)

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = f"{self.model}, {self.n_layers} layers: baseline loss {self.baseline_loss:.4f}, {len(self.curves)} drop curves"
        lines = [f"most redundant ({self.metric}): {', '.join(self.most_redundant())}"]
        lines += [f"{c.strategy} {c.schedule}: loss {c.points[0].loss:.4f} -> {c.points[-1].loss:.4f} "
                  f"with {c.points[-1].n_dropped} dropped" for c in self.curves if c.points]
        return plain_repr("RedundancyReport", head, lines)

    def _repr_html_(self) -> str:
        from interp.reports import line_svg, summary_html, table

        rows = [("model", self.model), ("layers", self.n_layers), ("baseline held-out loss", self.baseline_loss),
                ("calibration / held-out tokens", f"{self.n_calibration_tokens:,} / {self.n_heldout_tokens:,}"),
                (f"most redundant ({self.metric})", ", ".join(self.most_redundant())),
                ("Spearman(importance, loss increase)",
                 ", ".join(f"{g} {v[self.metric]:+.3f}" for g, v in self.rank_correlation.items()))]
        curves = table(["strategy", "schedule", "first dropped", "loss (none)", "loss (all)"],
                       [[c.strategy, c.schedule, ", ".join(c.order[:3]), c.points[0].loss, c.points[-1].loss]
                        for c in self.curves if c.points])
        longest = max((len(c.points) for c in self.curves), default=0)
        chart = line_svg({f"{c.strategy} {c.schedule}": [p.loss for p in c.points] + [float("nan")] * (longest - len(c.points))
                          for c in self.curves}, title="held-out loss vs modules dropped", x_label="modules dropped", log_y=True)
        return summary_html(f"Redundancy of {self.model}", rows, chart or None, table=curves,
                            note="to_html() for the full report with all plots")


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
) -> RedundancyReport:
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
    return RedundancyReport(
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
        settings={"strategies": list(strategies), "schedules": list(schedules), "include_bos": include_bos,
                  "batch_size": batch_size, "timing_repeats": timing_repeats,
                  "timing_shape": list(timing_tokens.shape) if timing_tokens is not None else None,
                  "device": str(model.cfg.device)},
    )


def load_tokens(model, source: str, ctx_len: int, n: int, seed: int) -> Tensor:
    """The first ``n`` BOS-led sequences of ``source`` as one ``(n, ctx_len)`` tensor."""
    from interp.data import token_batches

    if model.tokenizer is None:
        raise ConfigError("the model has no tokenizer; pass token tensors to interp.redundancy.analyze instead")
    ctx_len = min(ctx_len, model.cfg.n_ctx)
    rows = next(iter(token_batches(source, model.tokenizer, ctx_len, n, seed=seed)), None)
    if rows is None:
        raise ConfigError(f"the data source {source!r} holds fewer than {n} sequences of {ctx_len} tokens")
    return rows


def reference_tasks(n_prompts: int) -> Callable[[object], dict[str, float]]:
    """The reference model's task metrics as a ``tasks`` callback."""
    from interp.reference.tasks import evaluate

    return lambda model: evaluate(model, n_prompts=n_prompts).to_dict()


def run(cfg: RedundancyConfig) -> RedundancyReport:
    """Load ``cfg.model`` and its data, run :func:`analyze`, write JSON and HTML to ``cfg.out``."""
    from interp.io import atomic_write_text
    from interp.models import load_model

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    model = load_model(cfg.model, device=cfg.device)
    tokens = load_tokens(model, cfg.data, cfg.ctx_len, cfg.n_calibration + cfg.n_heldout, cfg.seed)
    calibration, heldout = tokens[: cfg.n_calibration], tokens[cfg.n_calibration :]
    use_tasks = cfg.model == "reference" if cfg.tasks is None else cfg.tasks
    if use_tasks and cfg.model != "reference" and "reference" not in str(model.cfg.model_name):
        from interp.errors import RedundancyError

        raise RedundancyError(f"task metrics exist only for the reference model, not {cfg.model!r}; drop --tasks")
    timing = heldout[: cfg.timing_batch] if cfg.timing_batch else None
    report = analyze(
        model, calibration, heldout, cfg.strategies, cfg.schedules, cfg.metric, cfg.batch_size, cfg.include_bos,
        max_drop=cfg.max_drop, tasks=reference_tasks(cfg.n_task_prompts) if use_tasks else None,
        timing_tokens=timing, timing_repeats=cfg.timing_repeats, name=cfg.model, progress=cfg.progress,
    )
    report.settings.update({"data": cfg.data, "ctx_len": int(tokens.shape[1]), "seed": cfg.seed})
    out = Path(cfg.out)
    report.save(out / "redundancy.json")
    atomic_write_text(out / "redundancy.html", report.to_html())
    return report
