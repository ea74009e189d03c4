"""``interp units``: a thin shell over :func:`interp.units.runs.compare_runs`."""

from __future__ import annotations

from interp.commands import command
from interp.units.runs import UnitsRunConfig


@command("units", help="neurons vs transcoder latents vs codebook codes per MLP layer: L0, faithfulness, specificity", config=UnitsRunConfig)
def _units(cfg: UnitsRunConfig) -> int:
    from interp.units.runs import compare_runs

    result, out = compare_runs(cfg)
    print(result.table())
    print(f"wrote {out / 'units.json'} and {out / 'units.html'}")
    return 0
