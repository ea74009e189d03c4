"""``interp codebook train / report / search``: thin shells over :mod:`interp.codebooks`."""

from __future__ import annotations

from interp.codebooks.search import CodeSearchConfig
from interp.codebooks.summary import CodebookSummaryConfig
from interp.codebooks.training import CodebookTrainConfig
from interp.commands import check_out, command, finish, say, write_results


@command("codebook", "train", help="train codebook bottlenecks on the LM loss", config=CodebookTrainConfig)
def _train(cfg: CodebookTrainConfig) -> int:
    from interp.codebooks.training import train

    result = train(cfg)
    return finish(result, written={"run": result.out})


@command("codebook", "report", help="the most frequent codes of a run, their contexts and tokens: JSON + HTML",
         config=CodebookSummaryConfig)
def _report(cfg: CodebookSummaryConfig) -> int:
    from interp.codebooks.summary import run

    check_out(cfg.out or cfg.run)  # the run directory when --out is unset: refused before the work, not after
    return finish(run(cfg), cfg.out or cfg.run)


@command("codebook", "search", help="codes that best match a property", config=CodeSearchConfig)
def _search(cfg: CodeSearchConfig) -> int:
    import json

    from interp.codebooks.search import run

    result = run(cfg)
    if not cfg.json:
        return finish(result, cfg.out)
    if cfg.out is not None:
        write_results(result, cfg.out)
    say(json.dumps(result.to_dict(), indent=2))  # JSON only on stdout, so it can be piped
    return 0
