"""Crash-safe file writing: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s directory; on success rename it onto ``path``.

    On any error (Ctrl-C included) the temporary file is removed and ``path`` keeps its
    old content, so a reader never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes 0600, and a writer may have replaced the file: give it normal permissions now
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, data, *, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON (one trailing newline) to ``path`` atomically; returns the path.

    The results' ``save`` methods all go through here, so a crash never leaves half a file.
    """
    import json

    atomic_write_text(path, json.dumps(data, indent=indent) + "\n")
    return Path(path)
