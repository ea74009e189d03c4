"""Redundancy: how much each attention layer, MLP and block matters, and what dropping them costs.

Follows He et al. 2024, "What Matters in Transformers? Not All Attention is Needed"
(LLM-Drop). See docs/redundancy.md.
"""

from interp.redundancy.dropping import (
    SCHEDULES,
    STRATEGIES,
    DropCurve,
    DropPoint,
    ablated,
    drop_curve,
    drop_order,
    heldout_loss,
    measure,
    skip_matches_ablation,
    skipped,
    speedup,
)
from interp.redundancy.importance import KINDS, METRICS, Importance, Module, importance, spearman

__all__ = [
    "KINDS", "METRICS", "SCHEDULES", "STRATEGIES", "DropCurve", "DropPoint", "Importance", "Module",
    "ablated", "drop_curve", "drop_order", "heldout_loss", "importance", "measure", "skip_matches_ablation",
    "skipped", "spearman", "speedup",
]
