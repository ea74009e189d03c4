"""Old public names kept working after a rename: they warn ``DeprecationWarning`` and forward."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any


def warn(old: str, use: str, *, stacklevel: int = 3) -> None:
    """Warn once per call site that ``old`` is deprecated and ``use`` replaces it (the caller's caller is blamed)."""
    warnings.warn(f"{old} is deprecated: use {use}", DeprecationWarning, stacklevel=stacklevel)


def renamed(old: str, new: Callable[..., Any], use: str) -> Callable[..., Any]:
    """``new`` under the deprecated name ``old``: each call warns "old is deprecated: use ``use``"."""

    @functools.wraps(new)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warn(old, use)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated name: use {use}."
    return alias
