"""Redundancy: how much each attention layer, MLP and block matters, and what dropping them costs.

Follows He et al. 2024, "What Matters in Transformers? Not All Attention is Needed"
(LLM-Drop). See docs/redundancy.md.

``run(RedundancyConfig(...))`` loads a model and its data and returns a
:class:`RedundancyResult` (what ``interp redundancy`` runs); :func:`analyze` does the same on
a model and token tensors you hold; ``result.write(out)`` saves ``redundancy.json`` and
``redundancy.html``.
"""

from interp.redundancy.analysis import RedundancyConfig, analyze, load_tokens, reference_tasks, run
from interp.redundancy.dropping import (
    SCHEDULES,
    STRATEGIES,
    DropCurve,
    DropPoint,
    ablated,
    drop_curve,
    drop_order,
    effective_metric,
    heldout_loss,
    measure,
    skip_matches_ablation,
    skipped,
    speedup,
)
from interp.redundancy.importance import (
    KINDS,
    METRICS,
    PARALLEL_NOTE,
    Importance,
    Module,
    importance,
    spearman,
    undefined_scores,
)
from interp.redundancy.result import RedundancyReport, RedundancyResult

__all__ = [
    "KINDS", "METRICS", "PARALLEL_NOTE", "SCHEDULES", "STRATEGIES", "DropCurve", "DropPoint", "Importance", "Module",
    "RedundancyConfig", "RedundancyReport", "RedundancyResult",
    "ablated", "analyze", "drop_curve", "drop_order", "effective_metric", "heldout_loss", "importance", "load_tokens",
    "measure", "reference_tasks", "run", "skip_matches_ablation", "skipped", "spearman", "speedup", "undefined_scores",
]
