"""Crash-safe file writing, and the directories interp writes.

:func:`atomic_write` writes to a temporary file beside the target, then renames it.
:func:`claim_output` makes one process the only writer of an output directory, refuses to
write over what is there unless told to, and marks the directory complete as its last write;
:func:`require_complete` is what readers call. See docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shlex
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from interp.errors import ConfigError, StoreError


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
    atomic_write_text(path, json.dumps(data, indent=indent) + "\n")
    return Path(path)


# --- output directories: one writer at a time, a completion marker, no silent overwrite -----

MARKER = ".interp.json"
"""The completion marker in every directory an ``interp`` command writes."""
LOCK = ".interp.lock"
"""The lock file a writer holds (``fcntl.flock``) while it writes the directory; it names the holder."""
_OWN = (MARKER, LOCK)
_HELD: dict[tuple[Path, int], str] = {}
"""The directories each thread of this process has claimed ((resolved path, thread) -> kind), so a
nested claim of the same one is the same claim (another thread's claim is another writer)."""


@dataclass(frozen=True)
class OutputKind:
    """A kind of output directory: its name in the marker, how to say it, and its own files."""

    name: str
    """The marker's ``kind``, e.g. ``"transcoder-run"``."""
    what: str
    """The kind in words, with its article: ``"a transcoder run"``."""
    files: tuple[str, ...] = ()
    """Glob patterns (relative to the directory) of the files and folders the kind writes:
    ``--overwrite`` removes these and nothing else, and their presence makes a directory written
    before markers existed count as one of this kind."""
    resume: str | None = None
    """How to finish an interrupted one, with ``{dir}`` for the directory, e.g.
    "`interp cache run --out {dir} --resume true` with the same settings"."""


RESULTS = OutputKind("results", "the results of an analysis")
"""The kind of a directory that ``interp.commands.finish`` writes results into; several results
may share one, and results may also be added to a finished directory of another kind."""


def _marker(directory: Path) -> dict | None:
    file = directory / MARKER
    if not file.is_file():
        return None
    try:
        marker = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StoreError(f"{file} is damaged ({err}); delete it if {directory} holds nothing you need, or choose another --out") from err
    if not isinstance(marker, dict) or "kind" not in marker:
        raise StoreError(f"{file} is not an interp completion marker; delete it or choose another --out")
    return marker


def _own_files(directory: Path, kind: OutputKind) -> list[Path]:
    return sorted({path for pattern in kind.files for path in directory.glob(pattern)})


def _snapshot(directory: Path, kind: OutputKind) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file of ``kind`` in ``directory`` (folders walked)."""
    seen = {}
    for path in _own_files(directory, kind):
        for file in [path, *path.rglob("*")] if path.is_dir() else [path]:
            if file.is_file():
                stat = file.stat()
                seen[str(file)] = (stat.st_size, stat.st_mtime_ns)
    return seen


def _others(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in _OWN)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _command_line() -> str:
    argv = list(sys.argv)
    path = Path(argv[0]) if argv and argv[0] else Path("python")
    program = path.name
    if program == "interp" or (program in ("__main__.py", "cli.py") and path.parent.name == "interp"):  # python -m interp(.cli)
        program = "interp"
    return shlex.join([program, *argv[1:]])


def _holder(lock_file: Path) -> str:
    try:
        record = json.loads(lock_file.read_text(encoding="utf-8"))
        since = record.get("started", "?").split("T")[-1][:8]
        return f"`{record['command']}` (pid {record['pid']} on {record['host']}, since {since})"
    except (OSError, ValueError, KeyError, AttributeError):
        return "another process (it has not recorded itself yet)"


def _lock(directory: Path) -> int:
    """Take the directory's lock (exclusive, non-blocking) and record the holder; returns the fd."""
    lock_file = directory / LOCK
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError as err:
        raise ConfigError(f"--out {directory} is not writable ({err.strerror}); choose a directory you can write to") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"{directory} is being written by {_holder(lock_file)}; wait for it to finish or choose another --out"
        ) from None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command_line(), "started": _now()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return fd


def _unlock(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _prepare_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--out {directory} is a file, not a directory; choose a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (PermissionError, FileExistsError, NotADirectoryError) as err:
        raise ConfigError(f"cannot create --out {directory} ({err.strerror}); choose a directory you can write to") from err
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {directory} is not writable; choose a directory you can write to")


def _refusal(directory: Path, found: dict | None, kind: OutputKind, overwrite: bool, resume: bool) -> str | None:
    """Why ``kind`` may not be written into ``directory`` whose marker is ``found`` (None: it may)."""
    if found is not None and found["kind"] != kind.name:
        return f"{directory} holds {found.get('what', found['kind'])}, not {kind.what}; choose another --out"
    if found is None:
        others = _others(directory)
        if not others or overwrite:
            return None
        if not _own_files(directory, kind):
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            return (f"{directory} is not empty ({shown}) and was not written by interp; choose an empty or new --out, "
                    "or pass --overwrite true to write into it")
        complete = True  # written before interp wrote markers: its own files count as a finished one
    else:
        complete = bool(found.get("complete"))
    if overwrite or resume:
        return None
    if complete:
        again = " or resume it with --resume true" if kind.resume else ""
        return f"{directory} already holds {kind.what}; pass --overwrite true to replace it{again}, or choose another --out"
    how = f"resume it with {kind.resume.replace('{dir}', str(directory))}, " if kind.resume else ""
    return (f"{directory} holds {_unfinished(kind.what)} (its writer stopped before the end); {how}"
            "pass --overwrite true to start again, or choose another --out")


def _unfinished(what: str) -> str:
    """``"a transcoder run"`` -> ``"an unfinished transcoder run"``."""
    return "an unfinished " + (what.split(" ", 1)[1] if what.startswith(("a ", "an ")) else what)


def _remove(paths: Iterable[Path]) -> None:
    import shutil

    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def write_marker(directory: Path, record: dict) -> None:
    """Write ``record`` as ``directory``'s completion marker, atomically."""
    atomic_write_json(Path(directory) / MARKER, record)


@contextlib.contextmanager
def claim_output(
    directory: str | os.PathLike, kind: OutputKind, *, overwrite: bool = False, resume: bool = False
) -> Iterator[Path]:
    """Own ``directory`` as the one writer of ``kind`` for the ``with`` block; yields it as a Path.

    * creates it; refuses (:class:`ConfigError`) a path that is a file or not writable;
    * takes an exclusive ``fcntl.flock`` on ``DIR/.interp.lock`` (released by the kernel when
      the process ends, so a killed writer leaves no stale lock) and records the holder there;
      a second writer is refused (:class:`StoreError`) with the holder's command, pid, host and
      start time;
    * refuses a directory of another kind (even with ``overwrite``), a non-empty directory interp
      did not write (unless ``overwrite``), and one that already holds ``kind``, finished or not
      (unless ``overwrite`` or ``resume``). ``overwrite`` removes ``kind.files`` and nothing else;
    * writes the marker ``DIR/.interp.json`` ``{"kind", "complete": false, ...}`` at once, and
      rewrites it with ``"complete": true`` as the last write (``resume`` first removes the
      ``.*.tmp`` files a killed writer's atomic writes left behind) when the block ends without an
      error. If the block raises before changing any of ``kind``'s files, the directory is left
      as it was (the old marker back, or no directory if the claim made it), so a refused resume
      does not unfinish a finished run.

    A claim nested in a claim of the same directory and kind (a command that claims its
    ``--out`` before it loads the model, around the library call that claims it too) is the
    outer claim: it yields at once and leaves the marker to the outer one.

    Readers call :func:`require_complete`.
    """
    directory = Path(directory)
    held = (directory.resolve(), threading.get_ident())
    if _HELD.get(held) == kind.name:
        yield directory
        return
    created = not directory.exists()
    _prepare_directory(directory)
    fd = _lock(directory)
    try:
        old = _marker(directory)
        reason = _refusal(directory, old, kind, overwrite, resume)
        if reason is not None:
            raise StoreError(reason)
        if overwrite and not resume:
            _remove(_own_files(directory, kind))
        if resume:  # what atomic_write left behind when the writer was killed
            _remove(list(directory.rglob(".*.tmp")))
        before = _snapshot(directory, kind)
        record = {"kind": kind.name, "what": kind.what, "complete": False, "started": _now(), "command": _command_line()}
        if kind.resume:
            record["resume"] = kind.resume  # with {dir}: the directory may move before it is resumed
        if old is not None and old.get("results"):
            record["results"] = old["results"]
        write_marker(directory, record)
        _HELD[held] = kind.name
        try:
            yield directory
        except BaseException:
            if _snapshot(directory, kind) == before:
                if old is not None:
                    write_marker(directory, old)
                else:
                    (directory / MARKER).unlink(missing_ok=True)
                if created and _others(directory) == []:  # a failed command leaves no trace
                    (directory / LOCK).unlink(missing_ok=True)
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            raise
        write_marker(directory, {**record, "complete": True, "finished": _now()})
    finally:
        _HELD.pop(held, None)
        _unlock(fd)


def _results_refusal(directory: Path, found: dict | None, key: str | None, command: str | None, overwrite: bool) -> str | None:
    """Why result ``key`` (None: any result of ``command``) may not be written into ``directory`` (None: it may)."""
    if found is not None and found["kind"] != RESULTS.name and not found.get("complete"):
        return f"{directory} holds {_unfinished(found.get('what', found['kind']))}; finish it first, or choose another --out"
    if overwrite:
        return None
    recorded = (found or {}).get("results", {})
    if key is not None:
        present = recorded.get(key, {}).get("files") or sorted(p.name for p in directory.glob(f"{glob.escape(key)}.*"))
    else:  # before the command runs: what the same command wrote there
        present = [f for entry in recorded.values() if entry.get("command") == command for f in entry.get("files", [])]
    if not present:
        return None
    shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
    return f"{directory} already holds {shown} from an earlier run; pass --overwrite true to replace them, or choose another --out"


def check_results(directory: str | os.PathLike, command: str, *, overwrite: bool = False) -> None:
    """What :func:`claim_results` would refuse, checked before a command computes its results:
    a path that is a file, a directory being written, an unfinished run, or the files the same
    ``command`` wrote there before (unless ``overwrite``). Creates nothing."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--out {directory} is a file, not a directory; choose a directory")
    if not directory.is_dir():
        return
    lock_file = directory / LOCK
    if lock_file.is_file():
        with open(lock_file, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"{directory} is being written by {_holder(lock_file)}; wait for it to finish or choose another --out"
                ) from None
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    reason = _results_refusal(directory, _marker(directory), None, command, overwrite)
    if reason is not None:
        raise StoreError(reason)


@contextlib.contextmanager
def claim_results(
    directory: str | os.PathLike, key: str, *, overwrite: bool = False, command: str | None = None
) -> Iterator[dict]:
    """Own ``directory`` while one result (its stem ``key``) is written into it.

    Results may share a directory, and may be added to a finished directory of another kind
    (``interp codebook report`` writes ``codes.*`` into the codebook run). The directory is
    locked as :func:`claim_output` locks it; a result whose files are already there (recorded
    in the marker, or any ``key.*`` file) is refused unless ``overwrite``, and so is an
    unfinished directory of another kind. Yields a dict: put the written paths in it under
    ``"paths"`` and the marker records them, with ``command``, under ``results[key]``.
    """
    directory = Path(directory)
    _prepare_directory(directory)
    fd = _lock(directory)
    try:
        reason = _results_refusal(directory, _marker(directory), key, command, overwrite)
        if reason is not None:
            raise StoreError(reason)
        written: dict = {}
        yield written
        record = _marker(directory) or {"kind": RESULTS.name, "what": RESULTS.what, "complete": True, "started": _now()}
        files = [os.path.relpath(path, directory) for path in written.get("paths", [])]
        record["results"] = {**record.get("results", {}), key: {"files": files, "command": command, "written": _now()}}
        write_marker(directory, record)
    finally:
        _unlock(fd)


def marker(directory: str | os.PathLike) -> dict | None:
    """The completion marker of ``directory`` (None where there is none)."""
    return _marker(Path(directory))


def require_complete(directory: str | os.PathLike, *kinds: OutputKind) -> None:
    """Refuse (:class:`StoreError`) a directory whose marker says it is unfinished, or (when
    ``kinds`` are given) that it holds another kind. A directory without a marker (written before
    interp wrote them, or by another program) passes: its reader's own checks apply."""
    directory = Path(directory)
    found = _marker(directory) if directory.is_dir() else None
    if found is None:
        return
    names = {kind.name for kind in kinds}
    if names and found["kind"] not in names and found["kind"] != RESULTS.name:
        wanted = " or ".join(kind.what for kind in kinds)
        raise StoreError(f"{directory} holds {found.get('what', found['kind'])}, not {wanted}")
    if not found.get("complete"):
        what = found.get("what", found["kind"])
        resume = found.get("resume")
        how = f"resume it with {resume.replace('{dir}', str(directory))}, or delete it" if resume else "write it again, or delete it"
        raise StoreError(f"{directory} is incomplete: {_unfinished(what)} (its writer stopped before the end, or is still "
                         f"running); {how}")
