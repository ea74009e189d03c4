"""kill -9 at a seeded random point of each writer, then --resume: the outputs equal an
uninterrupted run's byte for byte, the records are whole, and until the resume every reader
refuses the half-written directory. While the first writer runs, a second one on the same
--out is refused, naming the first.

Each writer runs the command line (``interp.cli.main``) in a forked child process and is
killed (SIGKILL) once it has made a seeded number of durable steps (checkpoints, shards), after
a seeded delay; the uninterrupted run and the resume run in this process, through the same
command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from interp.cli import main
from interp.errors import StoreError, TranscoderLoadError
from interp.io import marker

pytestmark = pytest.mark.usefixtures("one_thread", "warm")


@pytest.fixture(scope="module")
def warm(reference_model):
    """Import the command line and load the model once, before the first fork: every child and
    the runs here start at once."""
    from interp.cli import build_parser

    build_parser()


class Child:
    """``interp ARGS`` in a forked copy of this process (its imports are done, so it starts at
    once), with stderr in ``log``; killed with SIGKILL like any process."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:  # the child: the command line, then exit without running this process's cleanup
            code = 1
            try:
                sys.stdout, sys.stderr = open(os.devnull, "w"), open(log, "w", buffering=1)  # noqa: SIM115 - until os._exit
                sys.argv = ["interp", *args]
                code = main(args)
            finally:
                os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.wait()


def changes(path: Path) -> Callable[[], int]:
    """How many times ``path`` has been (re)written since this was called (atomic renames give new mtimes)."""
    state = {"last": None, "n": 0}

    def seen() -> int:
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return state["n"]
        if mtime != state["last"]:
            state["last"], state["n"] = mtime, state["n"] + 1
        return state["n"]

    return seen


def shards(out: Path) -> Callable[[], int]:
    def seen() -> int:
        try:
            return len(json.loads((out / "manifest.json").read_text())["shards"])
        except (FileNotFoundError, ValueError):
            return 0

    return seen


def wait_for(proc: Child, seen: Callable[[], int], n: int, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while seen() < n:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before step {n}:\n{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no step {n} within {timeout} s:\n{log.read_text()[-2000:]}")
        time.sleep(0.002)


def kill_at(proc: Child, seen: Callable[[], int], n: int, delay: float, log: Path) -> None:
    wait_for(proc, seen, n, log)
    time.sleep(delay)
    proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the run finished before the kill point:\n{log.read_text()[-2000:]}"


def digest(directory: Path, pattern: str) -> dict[str, str]:
    files = sorted(p for p in directory.glob(pattern) if p.is_file())
    assert files, f"nothing matches {pattern} in {directory}"
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def second_writer_is_refused(args: list[str], proc: Child, command: str, capsys) -> None:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(rf"is being written by `interp (--threads 1 )?{command} .*` \(pid {proc.pid} on .*, since .*\); wait", err), err
    assert err.count("\n") == 1


def crash_and_resume(tmp_path: Path, args: list[str], seen_of: Callable[[Path], Callable[[], int]], points: tuple[int, int],
                     seed: int, command: str, capsys) -> tuple[Path, Path]:
    """Kill ``args`` (without --out) at a seeded point, check the second writer and resume it;
    returns (the resumed directory, an uninterrupted run's directory)."""
    rng = random.Random(seed)
    n, delay = rng.randint(*points), rng.uniform(0.0, 0.05)
    crashed, whole, log = tmp_path / "crashed", tmp_path / "whole", tmp_path / "stderr.txt"
    proc = Child(["--threads", "1", *args, "--out", str(crashed)], log)
    try:
        seen = seen_of(crashed)
        wait_for(proc, seen, 1, log)
        second_writer_is_refused([*args, "--out", str(crashed)], proc, command, capsys)
        kill_at(proc, seen, n, delay, log)
    finally:
        proc.kill()
    assert marker(crashed)["complete"] is False
    (crashed / ".left-by-a-kill.abc.tmp").write_bytes(b"half a file")
    assert main([*args, "--out", str(whole)]) == 0
    return crashed, whole


def resume(args: list[str], crashed: Path) -> None:
    assert main([*args, "--out", str(crashed), "--resume", "true"]) == 0
    assert marker(crashed)["complete"] is True and not list(crashed.rglob("*.tmp"))


CACHE = ["cache", "run", "--layers", "0", "--n-tokens", "24k", "--ctx-len", "32", "--batch-size", "8",
         "--shard-mb", "0.05", "--progress", "false"]


def test_cache_run_killed_then_resumed_equals_an_uninterrupted_store(tmp_path, capsys):
    from interp.cache import ActivationStore

    crashed, whole = crash_and_resume(tmp_path, CACHE, shards, (2, 40), seed=1, command="cache run", capsys=capsys)
    with pytest.raises(StoreError, match="incomplete"):
        ActivationStore.open(crashed)
    resume(CACHE, crashed)
    assert digest(crashed, "shard-*.safetensors") == digest(whole, "shard-*.safetensors")
    done, ref = (json.loads((d / "manifest.json").read_text()) for d in (crashed, whole))
    assert done["shards"] == ref["shards"] and done["n_tokens"] == ref["n_tokens"] and done["complete"]
    # more tokens on resume: the manifest's record follows
    more = [*CACHE[:5], "32k", *CACHE[6:]]
    resume(more, crashed)
    done = json.loads((crashed / "manifest.json").read_text())
    assert done["config"]["n_tokens"] == "32k" and done["n_tokens"] == 32_000 and done["n_tokens"] > ref["n_tokens"]


TRANSCODER = ["transcoder", "train", "--layers", "0", "--tokens", "16k", "--batch-size", "128", "--ctx-len", "32",
              "--expansion", "2", "--checkpoint-every", "8", "--progress", "false", "--device", "cpu"]


def test_transcoder_train_killed_then_resumed_equals_an_uninterrupted_run(tmp_path, capsys):
    from interp.transcoders import load_run

    crashed, whole = crash_and_resume(tmp_path, TRANSCODER, lambda out: changes(out / "checkpoint" / "state.pt"),
                                      (2, 7), seed=2, command="transcoder train", capsys=capsys)
    with pytest.raises(TranscoderLoadError, match="incomplete.*--resume true"):
        load_run(crashed)
    resume(TRANSCODER, crashed)
    assert digest(crashed, "layer_0/*") == digest(whole, "layer_0/*")
    done, ref = (json.loads((d / "run.json").read_text()) for d in (crashed, whole))
    assert done["history"] == ref["history"] and len(done["history"]) == len(ref["history"]) > 100
    assert done["final"] == ref["final"] and done["steps"] == ref["steps"] == 125 and done["seconds"] > 0
    import torch

    kept = torch.load(crashed / "checkpoint" / "state.pt", weights_only=False)["record"]["seconds"]
    resume(TRANSCODER, crashed)  # from the final checkpoint: the record stays whole
    again = json.loads((crashed / "run.json").read_text())
    assert again["final"] == ref["final"] and again["history"] == ref["history"] and again["seconds"] >= kept > 0


CODEBOOK = ["codebook", "train", "--layers", "0", "--steps", "40", "--batch-size", "2", "--ctx-len", "16", "--n-codes", "16",
            "--checkpoint-every", "4", "--eval-batches", "1", "--kmeans-tokens", "256", "--progress", "false", "--device", "cpu"]


def test_codebook_train_killed_then_resumed_equals_an_uninterrupted_run(tmp_path, capsys):
    from interp.codebooks import Codebooks

    crashed, whole = crash_and_resume(tmp_path, CODEBOOK, lambda out: changes(out / "checkpoint.pt"),
                                      (1, 5), seed=3, command="codebook train", capsys=capsys)
    with pytest.raises(StoreError, match="incomplete.*--resume true"):
        Codebooks.load(crashed)
    resume(CODEBOOK, crashed)
    assert digest(crashed, "*.safetensors") == digest(whole, "*.safetensors")
    done, ref = (json.loads((d / "train_result.json").read_text()) for d in (crashed, whole))
    for key in ("steps", "loss_original", "loss_codebooks", "active_codes", "final_train_loss"):
        assert done[key] == ref[key], key


REFERENCE = ["reference", "train", "--steps", "40", "--batch-size", "2", "--ctx-len", "16", "--warmup-steps", "2",
             "--checkpoint-every", "4", "--threads", "1", "--progress", "false"]


class _NoTasks:
    """Stands in for the task metrics (512 prompts a task: seconds, and not what is tested here)."""

    def metrics(self) -> dict:
        return {}

    def passed(self) -> dict:
        return {}

    def table(self) -> str:
        return ""


def test_reference_train_killed_then_resumed_equals_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    from interp.models import load_model

    monkeypatch.setattr("interp.reference.tasks.evaluate", lambda model: _NoTasks())
    crashed, whole = crash_and_resume(tmp_path, REFERENCE, lambda out: changes(out / "checkpoint.pt"),
                                      (1, 6), seed=4, command="reference train", capsys=capsys)
    with pytest.raises(StoreError, match="incomplete.*--resume true"):
        load_model(str(crashed), device="cpu")
    resume(REFERENCE, crashed)
    assert digest(crashed, "*.safetensors") == digest(whole, "*.safetensors")
    assert digest(crashed, "*.json") .keys() >= {"config.json", "tokenizer.json"}
    for name in ("config.json", "tokenizer.json"):
        assert (crashed / name).read_bytes() == (whole / name).read_bytes()
    done, ref = (json.loads((d / "train_log.json").read_text())["result"] for d in (crashed, whole))
    assert done["final_loss"] == ref["final_loss"] and done["steps"] == ref["steps"] == 40
