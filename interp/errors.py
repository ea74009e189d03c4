"""The errors a user of interp can hit. Each one is explained in docs/errors.md.

Every error interp raises on purpose is an :class:`InterpError`; the command line prints it
as one line (``interp: error: ...``) with exit code 2, and shows the traceback only with
``--debug``. The kinds live here and nowhere else, so ``except InterpError`` catches them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InterpError(Exception):
    """Base class of every error interp raises on purpose."""


class ConfigError(InterpError, ValueError):
    """An invalid setting or argument: the message says which one, what was wrong and what to pass instead."""


class DataError(InterpError, ValueError):
    """A data source that cannot give what was asked: missing, empty, undecodable, or too short."""


class ModelLoadError(InterpError):
    """A model could not be loaded; the message lists what was tried and how to fix it."""


class _MessageKeyError(InterpError, KeyError):
    """A KeyError whose ``str`` is its message (``KeyError`` would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownHookError(_MessageKeyError):
    """A hook name (or site) the model does not have; the message lists close matches."""

    def __init__(self, name: str, known: Iterable[str], what: str = "hook point") -> None:
        known = list(known)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        message = f"the model has no {what} {name!r}.{hint} `interp info MODEL` lists them all."
        super().__init__(message)
        self.name = name
        self.close_matches = close


class UnknownArchitectureError(_MessageKeyError):
    """A transcoder architecture name that is not registered."""


class StoreError(InterpError):
    """An on-disk store (activation cache, checkpoint, run) is missing, incomplete or inconsistent."""


class TranscoderLoadError(InterpError):
    """Transcoders could not be loaded, or do not fit the model they are used with."""


class TargetError(ConfigError):
    """A logit target that is not a token of the model's vocabulary (or an empty prompt)."""


class KernelInputError(ConfigError):
    """Arguments a top-k kernel cannot take (shape, dtype, device, or ``k`` out of range)."""


class TrainingDivergedError(InterpError, FloatingPointError):
    """Training produced NaN or inf; the last good checkpoint is kept."""


class RedundancyError(InterpError):
    """The model's architecture does not allow measuring or dropping modules as asked."""


def close_matches_hint(name: str, known: Iterable[str]) -> str:
    """`` Did you mean: a, b?`` for the names in ``known`` close to ``name`` (empty when none is)."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""
