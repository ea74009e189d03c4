"""Deprecated module path: the redundancy analysis lives in :mod:`interp.redundancy.analysis`
(config, :func:`analyze`, :func:`run`) and :mod:`interp.redundancy.result` (the result class);
import them from :mod:`interp.redundancy`. ``RedundancyReport`` is the old name of
:class:`~interp.redundancy.result.RedundancyResult`.
"""

from __future__ import annotations

import warnings

from interp.redundancy.analysis import RedundancyConfig, analyze, load_tokens, rank_correlations, reference_tasks, run
from interp.redundancy.result import RedundancyReport, RedundancyResult

warnings.warn(
    "interp.redundancy.report is deprecated: import RedundancyConfig, RedundancyResult, analyze, load_tokens, "
    "reference_tasks and run from interp.redundancy",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["RedundancyConfig", "RedundancyReport", "RedundancyResult", "analyze", "load_tokens", "rank_correlations",
           "reference_tasks", "run"]
