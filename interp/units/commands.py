"""``interp units``: a thin shell over :func:`interp.units.run`."""

from __future__ import annotations

from interp.commands import command, finish
from interp.units.runs import UnitsRunConfig


@command("units", help="neurons vs transcoder latents vs codebook codes per MLP layer: L0, faithfulness, specificity", config=UnitsRunConfig)
def _units(cfg: UnitsRunConfig) -> int:
    from interp.units.runs import run

    return finish(run(cfg), cfg.out)
