"""``interp redundancy``: the CLI over :func:`interp.redundancy.run`."""

from __future__ import annotations

from interp.commands import command, finish
from interp.redundancy.analysis import RedundancyConfig


@command("redundancy", help="rank attention/MLP/block redundancy and measure what dropping them costs", config=RedundancyConfig)
def _redundancy(cfg: RedundancyConfig) -> int:
    from interp.redundancy.analysis import run

    return finish(run(cfg), cfg.out)
