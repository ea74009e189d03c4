"""The rules of an output directory (interp.io.claim_output / claim_results / require_complete),
on plain files: who may write, what is refused, what --overwrite removes, what readers accept."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from interp.errors import ConfigError, StoreError
from interp.io import LOCK, MARKER, OutputKind, claim_output, claim_results, marker, require_complete

RUN = OutputKind("test-run", "a test run", ("weights.bin", "log.json", "parts"), resume="`resume {dir}`")
OTHER = OutputKind("other-run", "another run", ("other.bin",))


def hashes(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (interp's lock file aside: its holder record changes) by content hash."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != LOCK}


def write_run(directory: Path, payload: bytes = b"w1", **kw) -> None:
    with claim_output(directory, RUN, **kw) as out:
        (out / "weights.bin").write_bytes(payload)
        (out / "parts").mkdir(exist_ok=True)
        (out / "parts" / "p0").write_bytes(payload)


def refused_then_resumed(out: Path, refusal: str) -> None:
    """A new run into ``out`` is refused with ``refusal``; ``resume=True`` is accepted and finishes it."""
    with pytest.raises(StoreError, match=refusal):
        write_run(out)
    write_run(out, resume=True)
    assert marker(out)["complete"] is True


def test_the_marker_is_written_first_as_unfinished_and_last_as_complete(tmp_path):
    out = tmp_path / "run"
    with claim_output(out, RUN) as claimed:
        assert claimed == out and marker(out)["complete"] is False and marker(out)["kind"] == "test-run"
        with pytest.raises(StoreError, match=r"is incomplete: an unfinished test run .*resume it with `resume .*run`"):
            require_complete(out)
        (out / "weights.bin").write_bytes(b"w")
    done = marker(out)
    assert done["complete"] is True and done["finished"] >= done["started"]
    require_complete(out, RUN)
    with pytest.raises(StoreError, match="holds a test run, not another run"):
        require_complete(out, OTHER)


def test_an_error_after_writing_leaves_the_directory_unfinished(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), claim_output(out, RUN):
        (out / "weights.bin").write_bytes(b"half")
        raise RuntimeError("killed")
    assert marker(out)["complete"] is False
    refused_then_resumed(out, "resume it with .*, pass --overwrite true to start again")


def test_a_failure_before_writing_changes_nothing(tmp_path):
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError), claim_output(fresh, RUN):
        raise RuntimeError("bad setting found after the claim")
    assert not fresh.exists()  # the claim made it, and leaves no trace
    done = tmp_path / "done"
    write_run(done)
    before = hashes(done)
    with pytest.raises(RuntimeError), claim_output(done, RUN, resume=True):
        raise RuntimeError("resume refused: other settings")
    assert hashes(done) == before and marker(done)["complete"] is True  # a refused resume does not unfinish a run


def test_refusals_name_the_directory_and_the_way_out(tmp_path):
    done = tmp_path / "done"
    write_run(done)
    before = hashes(done)
    with pytest.raises(StoreError, match=r"already holds a test run; pass --overwrite true to replace it or resume it"):
        write_run(done, payload=b"w2")
    with pytest.raises(StoreError, match="holds a test run, not another run; choose another --out"), \
            claim_output(done, OTHER, overwrite=True):
        pass
    assert hashes(done) == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match=r"is not empty \(notes.txt\) and was not written by interp"):
        write_run(foreign)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        write_run(a_file)
    assert a_file.read_text() == "x"


def test_overwrite_removes_the_kinds_own_files_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    write_run(out)
    (out / "parts" / "p1").write_bytes(b"stale part of the old run")
    (out / "readme.txt").write_text("a user's note")
    write_run(out, payload=b"w2", overwrite=True)
    assert (out / "weights.bin").read_bytes() == b"w2"
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["p0"]  # the old run's folder went with it
    assert (out / "readme.txt").read_text() == "a user's note"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    write_run(foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine" and marker(foreign)["complete"] is True


def test_resume_removes_temporary_files_a_killed_writer_left(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), claim_output(out, RUN):
        (out / "parts").mkdir()
        (out / "parts" / ".p1.abc123.tmp").write_bytes(b"half")
        raise KeyboardInterrupt
    write_run(out, resume=True)
    assert not list(out.rglob("*.tmp"))


def test_directories_written_before_markers_still_load_and_count_as_finished(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "weights.bin").write_bytes(b"old")
    require_complete(old, RUN)  # no marker: the reader's own checks apply
    refused_then_resumed(old, "already holds a test run")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    holding, release = threading.Event(), threading.Event()

    def first():
        with claim_output(out, RUN):
            (out / "weights.bin").write_bytes(b"first")
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(10)
    try:
        with pytest.raises(StoreError, match=rf"is being written by `.*` \(pid {os.getpid()} on .*, since .*\); wait"):
            write_run(out, payload=b"second", overwrite=True)
        with pytest.raises(StoreError, match="is being written by"), claim_results(out, "graph"):
            pass
    finally:
        release.set()
        thread.join()
    assert (out / "weights.bin").read_bytes() == b"first" and marker(out)["complete"] is True


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    code = ("import sys, time; from interp.io import claim_output, OutputKind; "
            "k = OutputKind('test-run', 'a test run', ('weights.bin',)); "
            f"c = claim_output({str(out)!r}, k); c.__enter__(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=rf"pid {proc.pid} on "):
            write_run(out)
    finally:
        proc.kill()
        proc.wait()
    write_run(out, resume=True)  # the kernel released the lock with the process; the run was left unfinished
    assert marker(out)["complete"] is True


def test_results_share_a_directory_and_are_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "reports"

    def write(key: str, text: str, **kw) -> None:
        with claim_results(out, key, command=f"make {key}", **kw) as claim:
            path = out / f"{key}.json"
            path.write_text(text)
            claim["paths"] = [path]

    write("graph", "1")
    write("sparsity", "2")  # another result beside it
    with pytest.raises(StoreError, match=r"already holds graph.json from an earlier run; pass --overwrite true"):
        write("graph", "3")
    assert (out / "graph.json").read_text() == "1"
    write("graph", "3", overwrite=True)
    assert (out / "graph.json").read_text() == "3"
    assert json.loads((out / MARKER).read_text())["results"]["sparsity"]["command"] == "make sparsity"
    (out / "eval.html").write_text("written before markers")  # no record: its files still count
    with pytest.raises(StoreError, match="eval.html"):
        write("eval", "4")


def test_results_may_join_a_finished_run_but_not_an_unfinished_one(tmp_path):
    out = tmp_path / "run"
    write_run(out)
    with claim_results(out, "codes") as claim:
        (out / "codes.json").write_text("{}")
        claim["paths"] = [out / "codes.json"]
    assert marker(out)["kind"] == "test-run" and marker(out)["complete"] is True
    with pytest.raises(StoreError, match="holds the results of an analysis, not a test run"):
        write_run(_results_dir(tmp_path))
    with pytest.raises(RuntimeError), claim_output(out, RUN, overwrite=True):
        (out / "weights.bin").write_bytes(b"half")
        raise RuntimeError
    with pytest.raises(StoreError, match="an unfinished test run; finish it first"), \
            claim_results(out, "codes", overwrite=True):
        pass


def _results_dir(tmp_path: Path) -> Path:
    out = tmp_path / "reports"
    with claim_results(out, "graph") as claim:
        (out / "graph.json").write_text("{}")
        claim["paths"] = [out / "graph.json"]
    return out
