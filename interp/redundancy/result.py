"""What the redundancy analysis of one model returns: :class:`RedundancyResult`.

Plain data on :class:`interp.results.Result` (``save``/``load`` JSON, ``write`` gives
``redundancy.json`` and ``redundancy.html``); the page itself is rendered by
:mod:`interp.redundancy.html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from interp.redundancy.dropping import DropCurve
from interp.redundancy.importance import KINDS, Importance, Module
from interp.results import Result


@dataclass
class RedundancyResult(Result):
    """Everything :func:`interp.redundancy.analyze` measured on one model."""

    stem: ClassVar[str] = "redundancy"
    title: ClassVar[str] = "Redundancy"
    former_kinds: ClassVar[tuple[str, ...]] = ("RedundancyReport",)

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
    notes: list[str] = field(default_factory=list)
    """What the architecture leaves undefined and what is measured instead, one sentence each."""

    def loss_increase(self, module: Module | str) -> float:
        return self.single_drop_loss[str(module)] - self.baseline_loss

    def curve(self, strategy: str, schedule: str) -> DropCurve:
        for curve in self.curves:
            if curve.strategy == strategy and curve.schedule == schedule:
                return curve
        raise KeyError(f"no curve for strategy {strategy!r} and schedule {schedule!r}")

    def most_redundant(self, kinds: Sequence[str] = ("attn", "mlp"), k: int = 3) -> list[str]:
        """The ``k`` most redundant modules of ``kinds`` (by the output variant where the metric is undefined)."""
        return [str(m) for m in self.importance.ranking(kinds, self.metric)[:k]]

    def summary(self) -> str:
        lines = [f"{self.model}: baseline held-out loss {self.baseline_loss:.4f}", self.importance.summary(), ""]
        lines.append(f"{'module':>8s} {'importance':>11s} {'loss increase':>14s}")
        for kind in KINDS:
            metric = self.importance.metric_for((kind,), self.metric)
            for layer in range(self.n_layers):
                m = Module(kind, layer)
                lines.append(f"{m!s:>8s} {self.importance.score(m, metric):11.5f} {self.loss_increase(m):14.4f}")
        lines.append("Spearman(importance, loss increase): " + ", ".join(
            f"{group} {values[self.metric]:+.3f}" for group, values in self.rank_correlation.items()
        ))
        lines += [curve.summary() for curve in self.curves]
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
        return plain_repr(type(self).__name__, head, lines)

    def _repr_html_(self) -> str:
        from interp.redundancy.html import compact

        return compact(self)


RedundancyReport = RedundancyResult
"""Deprecated name of :class:`RedundancyResult`."""


__all__ = ["RedundancyReport", "RedundancyResult"]
