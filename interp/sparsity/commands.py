"""``interp sparsity``: activation density, top-k thresholding and core neurons of every MLP.

A thin shell over :func:`interp.sparsity.run` (the function a notebook calls): it prints the
analysis's summary and writes its JSON and HTML into ``--out``.
"""

from __future__ import annotations

from interp.commands import command, finish
from interp.sparsity.analysis import SparsityConfig


@command("sparsity", help="activation density, top-k thresholding and core neurons of every MLP", config=SparsityConfig)
def _sparsity(cfg: SparsityConfig) -> int:
    from interp.sparsity.analysis import run

    return finish(run(cfg), cfg.out)
