"""``interp transcoder train``, ``eval``, ``export`` and ``import``: thin shells over the Python API."""

from __future__ import annotations

from interp.commands import check_out, command, finish
from interp.transcoders.evaluation import EvalConfig
from interp.transcoders.interop import ExportConfig, ImportConfig
from interp.transcoders.training import TrainConfig


@command("transcoder", "train", help="train transcoders imitating a model's MLP layers", config=TrainConfig)
def _train(cfg: TrainConfig) -> int:
    from interp.transcoders.training import train

    result = train(cfg)
    return finish(result, written={"run": result.out})


@command("transcoder", "eval", help="L0, FVU, CE loss recovered with transcoders spliced in; JSON + HTML report", config=EvalConfig)
def _eval(cfg: EvalConfig) -> int:
    from interp.transcoders.evaluation import output_dir, run

    check_out(output_dir(cfg))  # RUN/eval when --out is unset: refused before the evaluation, not after
    return finish(run(cfg), output_dir(cfg))


@command("transcoder", "export", help="write a run's transcoders for SAELens or sparsify's own loaders", config=ExportConfig)
def _export(cfg: ExportConfig) -> int:
    from interp.transcoders.interop import export

    return finish(export(cfg), written={"folder": cfg.out})


@command("transcoder", "import", help="read transcoders SAELens or sparsify saved into an interp folder", config=ImportConfig)
def _import(cfg: ImportConfig) -> int:
    from interp.transcoders.interop import import_transcoders

    return finish(import_transcoders(cfg), written={"folder": cfg.out})
