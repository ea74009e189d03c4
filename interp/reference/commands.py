"""``interp reference eval`` and ``interp reference train``: thin shells over :mod:`interp.reference`."""

from __future__ import annotations

from interp.commands import command, finish
from interp.reference.tasks import ReferenceEvalConfig
from interp.reference.train import ReferenceTrainConfig


@command("reference", "eval", help="print each task metric of the reference model", config=ReferenceEvalConfig)
def _eval(cfg: ReferenceEvalConfig) -> int:
    from interp.reference.tasks import run

    metrics = run(cfg)
    return finish(metrics, cfg.out, code=0 if metrics.all_passed() else 1)


@command("reference", "train", help="train the reference model from its seed", config=ReferenceTrainConfig)
def _train(cfg: ReferenceTrainConfig) -> int:
    from interp.reference.train import train

    result = train(cfg)
    return finish(result, written={"model": result.out}, code=0 if all(result.passed.values()) else 1)
