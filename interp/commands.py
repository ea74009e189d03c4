"""The registry of ``interp`` subcommands, apart from the parser that reads it.

Each capability's ``commands.py`` registers its subcommands here with :func:`command`; the
command line (:mod:`interp.cli`) imports those modules and builds its parser from
:data:`COMMANDS`. Command modules import this module, never the CLI, so nothing imports
the CLI back.

A subcommand is a config dataclass (its field docstrings are the ``--help`` text) and a
function of a few lines: build nothing, call the capability's ``run(cfg)`` (the function a
notebook calls), then :func:`finish` prints the result's summary and writes it into ``--out``.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    """The words after ``interp``, e.g. ``("transcoder", "train")``."""
    help: str
    """One line for ``interp --help``."""
    config: type
    """The dataclass the arguments are parsed into."""
    run: Callable
    """``run(cfg) -> exit code`` (None counts as 0)."""


COMMANDS: dict[tuple[str, ...], Command] = {}
GROUP_HELP: dict[str, str] = {
    "reference": "train and evaluate the offline reference model",
    "neurons": "decode MLP neurons through the unembedding and verify them by clamping",
    "circuit": "attribution graphs through transcoders: trace, export, report",
    "codebook": "codebook bottlenecks: train, search and report discrete codes",
    "cache": "cache activations of hook points to disk and inspect stores",
    "transcoder": "train transcoders that imitate MLP layers, and evaluate them spliced in",
}
COMMAND_MODULES: tuple[str, ...] = (
    "interp.reference.commands",
    "interp.transcoders.commands",
    "interp.codebooks.commands",
    "interp.cache.commands",
    "interp.redundancy.commands",
    "interp.neurons.commands",
    "interp.sparsity.commands",
    "interp.circuits.commands",
    "interp.units.commands",
)
"""Modules that register subcommands when imported (one per capability)."""


def command(*path: str, help: str, config: type) -> Callable:
    """Register ``run(cfg)`` as the subcommand ``interp <path...>``."""

    def register(run: Callable) -> Callable:
        COMMANDS[path] = Command(path, help, config, run)
        return run

    return register


def load_all() -> dict[tuple[str, ...], Command]:
    """Import every command module (filling :data:`COMMANDS`) and return the registry."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    return COMMANDS


def is_main_process() -> bool:
    """True except on ranks other than 0 under torchrun (only rank 0 prints)."""
    return os.environ.get("RANK", "0") == "0"


def say(*lines: str) -> None:
    """Print lines for the user (command modules only; the library logs instead)."""
    if is_main_process():
        for line in lines:
            print(line)


@dataclass(frozen=True)
class Running:
    """The subcommand being run and its global ``--overwrite``, as :func:`finish` sees them."""

    path: tuple[str, ...] = ()
    overwrite: bool = False


_RUNNING: contextvars.ContextVar[Running] = contextvars.ContextVar("interp_running")
_IDLE = Running()


@contextlib.contextmanager
def running(path: tuple[str, ...], *, overwrite: bool = False) -> Iterator[None]:
    """Run a subcommand's function inside this block (what the CLI does): :func:`finish` then
    writes results only where ``--overwrite`` allows."""
    token = _RUNNING.set(Running(path, overwrite))
    try:
        yield
    finally:
        _RUNNING.reset(token)


def check_out(out: str | Path | None) -> None:
    """Before a results command runs: refuse an ``--out`` that :func:`finish` would refuse at the
    end because the same command already wrote its results there (or the path is a file, or is
    being written), so a long analysis is not computed in vain."""
    from interp.io import check_results

    now = _RUNNING.get(_IDLE)
    if out is not None and now.path:
        check_results(out, " ".join(now.path), overwrite=now.overwrite)


def finish(result, out: str | Path | None = None, *, code: int = 0, written: Mapping[str, str | Path] | None = None) -> int:
    """Print ``result.summary()``, write it into ``out`` (unless ``written`` lists the files
    already written), print the paths and return ``code``.

    ``out`` is written through :func:`interp.io.claim_results`: locked while the files are
    written, and an earlier run's files of the same result are replaced only with ``--overwrite``."""
    say(result.summary())
    paths = dict(written or {})
    if out is not None and written is None:
        paths = write_results(result, out)
    for kind, path in paths.items():
        say(f"  wrote {kind:8s} {path}")
    return code


def write_results(result, out: str | Path) -> dict[str, Path]:
    """``result.write(out)`` through :func:`interp.io.claim_results` (what :func:`finish` does):
    ``out`` locked while the files are written, an earlier run's files of the same result
    replaced only with ``--overwrite``. Returns the paths by kind."""
    from interp.io import claim_results

    now = _RUNNING.get(_IDLE)
    with claim_results(out, result.stem, overwrite=now.overwrite, command=" ".join(now.path) or None) as claim:
        paths = result.write(out)
        claim["paths"] = list(paths.values())
    return paths


def warn(message: str) -> None:
    """One line on stderr, prefixed like the CLI's errors."""
    print(f"interp: warning: {message}", file=sys.stderr)


__all__ = ["COMMANDS", "COMMAND_MODULES", "GROUP_HELP", "Command", "Running", "check_out", "command", "finish",
           "is_main_process", "load_all", "running", "say", "warn", "write_results"]
