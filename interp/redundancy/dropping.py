"""Dropping modules: zero-ablation with scoped hooks, real skipping, and drop curves.

- :func:`ablated` zero-ablates ``hook_attn_out`` / ``hook_mlp_out`` (both for a block)
  inside a ``with`` block. Those hooks hold what the sublayer adds to the residual stream
  (after Gemma 2's post-sublayer norms, and with parallel attention and MLP each is one
  term of ``resid_post``), so on every architecture this is exactly removing the module
  and its norms: the residual stream passes through unchanged.
- :func:`skipped` really removes the computation: inside the ``with`` block the dropped
  attention / MLP (and its norms) are swapped for modules that return zeros or their
  input, and a dropped block for one that returns its input. Its logits equal
  :func:`ablated`'s; it exists to time what dropping saves.
- :func:`drop_order` ranks modules once (one-shot) or re-measures after each drop
  (iterative); :func:`drop_curve` then measures, for each number of dropped modules,
  held-out loss, task metrics (a callback) and the forward-pass speed-up.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from jaxtyping import Int
from torch import Tensor, nn

from interp.errors import ConfigError
from interp.redundancy.importance import Module, _batches, check_model, importance, undefined_scores
from interp.results import Result

logger = logging.getLogger(__name__)

Strategy = Literal["attn", "mlp", "block", "joint"]
STRATEGIES: tuple[str, ...] = ("attn", "mlp", "block", "joint")
Schedule = Literal["one-shot", "iterative"]
SCHEDULES: tuple[str, ...] = ("one-shot", "iterative")
STRATEGY_KINDS: dict[str, tuple[str, ...]] = {"attn": ("attn",), "mlp": ("mlp",), "block": ("block",), "joint": ("attn", "mlp")}
"""The module kinds each strategy ranks (``joint`` ranks attention and MLP together)."""


def effective_metric(model, kinds: Sequence[str], metric: str) -> str:
    """The metric ``kinds`` are ranked by on ``model``: ``metric``, or ``"output"`` where the
    residual score of one of ``kinds`` is undefined (attention and MLP on parallel blocks)."""
    undefined = undefined_scores(model)
    return "output" if metric == "residual" and any(kind in undefined for kind in kinds) else metric


def _check_modules(model, modules: Iterable[Module]) -> list[Module]:
    modules = [m if isinstance(m, Module) else Module(*m) for m in modules]
    for m in modules:
        if m.kind not in STRATEGY_KINDS["joint"] + ("block",):
            raise ConfigError(f"unknown module kind {m.kind!r} in {m}; use 'attn', 'mlp' or 'block'")
        if not 0 <= m.layer < model.cfg.n_layers:
            raise ConfigError(f"{m}: layer out of range, the model has layers 0..{model.cfg.n_layers - 1}")
    return modules


def _zero(value: Tensor, hook) -> Tensor:
    return torch.zeros_like(value)


@contextlib.contextmanager
def ablated(model, modules: Iterable[Module]) -> Iterator[None]:
    """Zero-ablate the outputs of ``modules`` for the duration of the ``with`` block."""
    from interp.hooks import hook_name, validate

    modules = _check_modules(model, modules)
    names = []
    for m in modules:
        sites = ("attn_out", "mlp_out") if m.kind == "block" else (f"{m.kind}_out",)
        names += [hook_name(site, m.layer) for site in sites]
    names = validate(model, sorted(set(names)))
    with model.hooks(fwd_hooks=[(name, _zero) for name in names]):
        yield


class _Passthrough(nn.Module):
    """Stands in for a dropped module's LayerNorm: returns its input, computes nothing."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class _ZeroAttention(nn.Module):
    """Stands in for a dropped attention layer: writes zeros, computes nothing else."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model

    def forward(self, query_input: Tensor, key_input=None, value_input=None, **kwargs) -> Tensor:
        return query_input.new_zeros(*query_input.shape[:2], self.d_model)


class _ZeroMLP(nn.Module):
    """Stands in for a dropped MLP."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


class _SkippedBlock(nn.Module):
    """Stands in for a dropped block: the residual stream passes through."""

    def forward(self, resid_pre: Tensor, *args, **kwargs) -> Tensor:
        return resid_pre


@contextlib.contextmanager
def skipped(model, modules: Iterable[Module]) -> Iterator[None]:
    """Really skip ``modules`` (no computation) for the duration of the ``with`` block.

    The original submodules are put back when the block ends, even on error. Hooks
    inside skipped modules do not fire; use :func:`ablated` to read activations.
    """
    modules = _check_modules(model, modules)
    check_model(model)
    attn = {m.layer for m in modules if m.kind in ("attn", "block")}
    mlp = {m.layer for m in modules if m.kind in ("mlp", "block")}
    saved: list[tuple[nn.Module, str, nn.Module]] = []

    def swap(parent: nn.Module, name: str, new: nn.Module) -> None:
        saved.append((parent, name, getattr(parent, name)))
        setattr(parent, name, new)

    try:
        for layer in sorted(attn | mlp):
            block = model.blocks[layer]
            if layer in attn and layer in mlp:
                saved.append((model.blocks, str(layer), block))
                model.blocks[layer] = _SkippedBlock()
                continue
            # the sublayer, its norm, and the norm after it where the model has one (Gemma 2);
            # a norm of zeros is zeros, so passing them through changes nothing
            if layer in attn:
                swap(block, "ln1", _Passthrough())
                swap(block, "attn", _ZeroAttention(model.cfg.d_model))
                if hasattr(block, "ln1_post"):
                    swap(block, "ln1_post", _Passthrough())
            else:
                swap(block, "ln2", _Passthrough())
                swap(block, "mlp", _ZeroMLP())
                if hasattr(block, "ln2_post"):
                    swap(block, "ln2_post", _Passthrough())
        yield
    finally:
        for parent, name, original in reversed(saved):
            if isinstance(parent, nn.ModuleList):
                parent[int(name)] = original
            else:
                setattr(parent, name, original)


@torch.no_grad()
def heldout_loss(model, tokens: Int[Tensor, "n pos"], batch_size: int | None = None) -> float:
    """Mean next-token cross-entropy over every predicted token (sums, not batch means)."""
    total, count = 0.0, 0
    for batch in _batches(tokens, batch_size):
        losses = model(batch.to(model.cfg.device), return_type="loss", loss_per_token=True)
        total += float(losses.double().sum())
        count += losses.numel()
    return total / count


@torch.no_grad()
def speedup(model, modules: Sequence[Module], tokens: Int[Tensor, "batch pos"], repeats: int = 5) -> tuple[float, float, float]:
    """Fastest of ``repeats`` forward passes intact and with ``modules`` skipped, and their ratio.

    The two are timed alternately (after one warm-up each) so that load from other
    processes hits both alike, and the minimum is kept: background load only ever adds
    time, so the fastest run is the best estimate of the computation's own cost.
    """
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    tokens = tokens.to(model.cfg.device)
    sync = torch.cuda.synchronize if tokens.is_cuda else (lambda: None)

    def once() -> float:
        sync()
        start = time.perf_counter()
        model(tokens)
        sync()
        return time.perf_counter() - start

    intact, dropped = [], []
    for i in range(repeats + 1):
        t_intact = once()
        with skipped(model, modules):
            t_dropped = once()
        if i > 0:
            intact.append(t_intact)
            dropped.append(t_dropped)
    base, fast = min(intact), min(dropped)
    return base, fast, base / fast


@torch.no_grad()
def skip_matches_ablation(model, modules: Sequence[Module], tokens: Int[Tensor, "batch pos"]) -> float:
    """Largest absolute difference between the logits of :func:`skipped` and :func:`ablated`."""
    tokens = tokens.to(model.cfg.device)
    with ablated(model, modules):
        reference = model(tokens)
    with skipped(model, modules):
        fast = model(tokens)
    return float((reference - fast).abs().max())


def drop_order(
    model,
    calibration: Int[Tensor, "n pos"],
    strategy: str = "attn",
    schedule: str = "one-shot",
    metric: str = "residual",
    max_drop: int | None = None,
    **importance_kwargs,
) -> tuple[list[Module], list[float]]:
    """The order in which ``strategy``'s modules are dropped, and each one's score when picked.

    One-shot ranks once on the intact model; iterative zero-ablates the modules dropped
    so far, re-measures, and drops the least important remaining module, repeatedly.
    Modules are ranked by :func:`effective_metric` (``metric`` unless it is undefined there).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    kinds = STRATEGY_KINDS[strategy]
    metric = effective_metric(model, kinds, metric)
    total = len(kinds) * model.cfg.n_layers
    n = total if max_drop is None else min(max_drop, total)
    if schedule == "one-shot":
        scores = importance(model, calibration, **importance_kwargs)
        order = scores.ranking(kinds, metric)[:n]
        return order, [scores.score(m, metric) for m in order]
    order, picked = [], []
    for _ in range(n):
        scores = importance(model, calibration, dropped=order, **importance_kwargs)
        best = scores.ranking(kinds, metric, exclude=order)[0]
        logger.info("iterative %s: dropping %s (importance %.5f)", strategy, best, scores.score(best, metric))
        order.append(best)
        picked.append(scores.score(best, metric))
    return order, picked


@dataclass
class DropPoint:
    """The model with its first ``n_dropped`` modules of a drop order removed."""

    n_dropped: int
    dropped: list[str]
    loss: float
    perplexity: float
    tasks: dict[str, float] | None = None
    seconds_intact: float | None = None
    seconds_dropped: float | None = None
    speedup: float | None = None
    skip_max_abs_diff: float | None = None
    """Max |logits(skipped) - logits(zero-ablated)|: 0 up to float error when skipping is exact."""

    def __repr__(self) -> str:
        extra = f", speed-up {self.speedup:.2f}x" if self.speedup is not None else ""
        tasks = f", {len(self.tasks)} task metrics" if self.tasks else ""
        return f"DropPoint({self.n_dropped} dropped: loss {self.loss:.4f}, perplexity {self.perplexity:.2f}{extra}{tasks})"


@dataclass
class DropCurve(Result):
    """Loss, task metrics and speed-up as modules are dropped in one strategy's order."""

    stem: ClassVar[str] = "drop_curve"
    title: ClassVar[str] = "Drop curve"

    strategy: str
    schedule: str
    metric: str
    order: list[str]
    scores: list[float]
    """Each dropped module's importance when it was picked."""
    points: list[DropPoint] = field(default_factory=list)

    def summary(self) -> str:
        """One line: strategy, schedule, drop order and the held-out loss at each point."""
        losses = " ".join(f"{p.loss:.3f}" for p in self.points)
        return f"{self.strategy:5s} {self.schedule:9s} order {','.join(self.order)}  loss {losses}"

    def __repr__(self) -> str:
        from interp.reports import brief, plain_repr

        head = f"{self.strategy}, {self.schedule}, {len(self.order)} modules by {self.metric} importance"
        lines = [f"order: {brief(self.order, 6)}"]
        if self.points:
            lines.append(f"loss {self.points[0].loss:.4f} with none dropped -> {self.points[-1].loss:.4f} with {self.points[-1].n_dropped}")
        return plain_repr("DropCurve", head, lines)

    def _repr_html_(self) -> str:
        from interp.redundancy.html import curve_block

        return curve_block(self)

def drop_curve(
    model,
    calibration: Int[Tensor, "n pos"],
    heldout: Int[Tensor, "m pos"],
    strategy: str = "attn",
    schedule: str = "one-shot",
    metric: str = "residual",
    batch_size: int | None = None,
    include_bos: bool = True,
    bos_token_id: int | None = None,
    max_drop: int | None = None,
    tasks: Callable[[object], dict[str, float]] | None = None,
    timing_tokens: Int[Tensor, "batch pos"] | None = None,
    timing_repeats: int = 5,
    memo: dict | None = None,
) -> DropCurve:
    """Drop ``strategy``'s modules one by one and measure the model after each drop.

    Args:
        calibration: sequences the importance is measured on.
        heldout: sequences the loss is measured on (keep them apart from calibration).
        tasks: optional ``f(model) -> {metric: value}`` called with the drops applied as
            hooks (e.g. the reference model's task metrics).
        timing_tokens: one batch to time forward passes on; no timing when None.
        memo: a dict shared between calls on the same model and data: a set of dropped
            modules already measured (by another strategy or schedule) is not measured again.
    """
    metric = effective_metric(model, STRATEGY_KINDS.get(strategy, ()), metric)
    order, scores = drop_order(
        model, calibration, strategy, schedule, metric, max_drop,
        batch_size=batch_size, include_bos=include_bos, bos_token_id=bos_token_id,
    )
    curve = DropCurve(strategy, schedule, metric, [str(m) for m in order], scores)
    memo = {} if memo is None else memo
    for k in range(len(order) + 1):
        dropped = order[:k]
        key = frozenset(_expand(dropped))
        if key not in memo:
            memo[key] = measure(model, dropped, heldout, batch_size, tasks, timing_tokens, timing_repeats)
        point = DropPoint(k, [str(m) for m in dropped], **memo[key])
        logger.info("%s %s: %d dropped, loss %.4f", strategy, schedule, k, point.loss)
        curve.points.append(point)
    return curve


def _expand(modules: Iterable[Module]) -> list[Module]:
    """A block is its attention and its MLP (so equal drops share one measurement)."""
    out = []
    for m in modules:
        out += [Module("attn", m.layer), Module("mlp", m.layer)] if m.kind == "block" else [m]
    return out


@torch.no_grad()
def measure(
    model,
    dropped: Sequence[Module],
    heldout: Int[Tensor, "m pos"],
    batch_size: int | None = None,
    tasks: Callable[[object], dict[str, float]] | None = None,
    timing_tokens: Int[Tensor, "batch pos"] | None = None,
    timing_repeats: int = 5,
) -> dict:
    """Loss, perplexity, task metrics and (with ``timing_tokens``) speed-up with ``dropped`` removed."""
    with ablated(model, dropped):
        loss = heldout_loss(model, heldout, batch_size)
        metrics = tasks(model) if tasks is not None else None
    out = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tasks": metrics}
    if timing_tokens is not None:
        out["seconds_intact"], out["seconds_dropped"], out["speedup"] = speedup(model, dropped, timing_tokens, timing_repeats)
        out["skip_max_abs_diff"] = skip_matches_ablation(model, dropped, timing_tokens)
    return out
