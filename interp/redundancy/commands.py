"""``interp redundancy``: the CLI over :func:`interp.redundancy.report.run`."""

from __future__ import annotations

from pathlib import Path

from interp.commands import command
from interp.redundancy.report import RedundancyConfig


@command("redundancy", help="rank attention/MLP/block redundancy and measure what dropping them costs", config=RedundancyConfig)
def _redundancy(cfg: RedundancyConfig) -> int:
    from interp.redundancy.report import run

    report = run(cfg)
    print(report.summary())
    out = Path(cfg.out)
    print(f"wrote {out / 'redundancy.json'} and {out / 'redundancy.html'}")
    return 0
