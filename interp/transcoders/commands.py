"""``interp transcoder train`` and ``interp transcoder eval``: thin shells over the Python API."""

from __future__ import annotations

from interp.commands import command
from interp.transcoders.evaluation import EvalConfig
from interp.transcoders.training import TrainConfig


@command("transcoder", "train", help="train transcoders imitating a model's MLP layers", config=TrainConfig)
def _train(cfg: TrainConfig) -> int:
    from interp.transcoders.training import train

    result = train(cfg)
    if result.config is not None and _is_main():
        print(f"trained {result.arch} transcoders for layers {result.layers} on {result.tokens} tokens in {result.seconds:.0f} s")
        print(result.table())
        print(f"wrote {result.out} (SAELens layout per layer; run.json)")
    return 0


@command("transcoder", "eval", help="L0, FVU, CE loss recovered with transcoders spliced in; JSON + HTML report", config=EvalConfig)
def _eval(cfg: EvalConfig) -> int:
    from interp.transcoders.evaluation import run_eval

    result, out = run_eval(cfg)
    print(result.table())
    print(f"wrote {out / 'eval.json'} and {out / 'report.html'}")
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"
