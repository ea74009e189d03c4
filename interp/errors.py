"""The errors a user of interp can hit. Each one is explained in docs/errors.md."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InterpError(Exception):
    """Base class of every error interp raises on purpose."""


class ModelLoadError(InterpError):
    """A model could not be loaded; the message lists what was tried and how to fix it."""


class UnknownHookError(InterpError, KeyError):
    """A hook name (or site) the model does not have; the message lists close matches."""

    def __init__(self, name: str, known: Iterable[str], what: str = "hook point") -> None:
        known = list(known)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        message = f"the model has no {what} {name!r}.{hint} `interp info MODEL` lists them all."
        super().__init__(message)
        self.name = name
        self.close_matches = close

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class StoreError(InterpError):
    """An on-disk store (activation cache, checkpoint) is missing, incomplete or inconsistent."""


class TrainingDivergedError(InterpError, FloatingPointError):
    """Training produced NaN or inf; the last good checkpoint is kept."""


class RedundancyError(InterpError):
    """The model's architecture does not allow measuring or dropping modules as asked."""
