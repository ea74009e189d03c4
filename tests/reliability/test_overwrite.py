"""Nothing is replaced without --overwrite, --overwrite never crosses kinds, and a half-written
run is refused by the commands that read it. Each refusal is one line with exit code 2, and no
file changes (hash before and after)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from interp.cli import main
from interp.io import LOCK, marker

pytestmark = pytest.mark.usefixtures("one_thread")

TRANSCODER = ["transcoder", "train", "--layers", "0", "--tokens", "4k", "--batch-size", "128", "--ctx-len", "32",
              "--expansion", "2", "--progress", "false", "--device", "cpu"]


def hashes(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != LOCK}


def refused(args: list[str], capsys, pattern: str, *, unchanged: Path) -> str:
    """Run ``interp ARGS``: exit 2, one line matching ``pattern``, ``unchanged`` as it was."""
    before = hashes(unchanged)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("interp: error: ") and err.count("\n") == 1, err
    assert re.search(pattern, err), err
    assert hashes(unchanged) == before
    return err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tc") / "run"
    assert main([*TRANSCODER, "--out", str(out)]) == 0
    return out


def test_a_second_training_run_into_the_same_out_is_refused(run_dir, capsys):
    refused([*TRANSCODER, "--out", str(run_dir), "--lr", "3e-3"], capsys,
            r"already holds a transcoder run; pass --overwrite true to replace it or resume it", unchanged=run_dir)


def test_a_resume_with_other_settings_names_each_flag(run_dir, capsys):
    refused([*TRANSCODER, "--out", str(run_dir), "--lr", "3e-3", "--expansion", "4", "--resume", "true"], capsys,
            r"was trained with other settings \(--expansion: the run has 2, this one 4; --lr: the run has 0.001, "
            r"this one 0.003\); resume with the same ones", unchanged=run_dir)
    assert marker(run_dir)["complete"] is True  # a refused resume leaves the finished run finished


@pytest.mark.parametrize(("command", "files", "what"), [
    (["reference", "train", "--steps", "2"], ["model.safetensors", "config.json"], "a reference model"),
    (["codebook", "train", "--steps", "2"], ["codebooks.json", "codebooks.safetensors"], "a codebook run"),
    (["cache", "run", "--n-tokens", "2k"], ["manifest.json"], "an activation store"),
])
def test_outputs_written_before_markers_are_not_replaced_either(command, files, what, tmp_path, capsys):
    """The issue's silent replacements: a second `reference train` or `codebook train` into a
    directory holding one (here as written before interp kept markers)."""
    old = tmp_path / "old"
    old.mkdir()
    for name in files:
        (old / name).write_text("an earlier run's file")
    refused([*command, "--out", str(old)], capsys, rf"already holds {what}; pass --overwrite true", unchanged=old)


def test_overwrite_never_crosses_kinds(run_dir, capsys, tmp_path):
    refused(["cache", "run", "--layers", "0", "--n-tokens", "2k", "--ctx-len", "32", "--out", str(run_dir),
             "--overwrite", "true"], capsys, r"holds a transcoder run, not an activation store; choose another --out",
            unchanged=run_dir)
    refused(["codebook", "train", "--steps", "2", "--out", str(run_dir), "--overwrite", "true"], capsys,
            r"holds a transcoder run, not a codebook run", unchanged=run_dir)
    refused(["reference", "train", "--steps", "2", "--out", str(run_dir), "--overwrite", "true"], capsys,
            r"holds a transcoder run, not a reference model", unchanged=run_dir)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not interp's")
    refused(["reference", "train", "--steps", "2", "--out", str(mine)], capsys,
            r"is not empty \(notes.txt\) and was not written by interp; .* --overwrite true", unchanged=mine)


def test_overwrite_replaces_the_run_and_keeps_what_is_not_its_own(run_dir, tmp_path):
    out = tmp_path / "run"
    assert main([*TRANSCODER, "--out", str(out)]) == 0
    (out / "notes.txt").write_text("a user's note")
    old = json.loads((out / "run.json").read_text())
    assert main([*TRANSCODER, "--out", str(out), "--lr", "3e-3", "--overwrite", "true"]) == 0
    new = json.loads((out / "run.json").read_text())
    assert new["config"]["optim"]["lr"] == 3e-3 and new["history"] != old["history"]
    assert (out / "notes.txt").read_text() == "a user's note" and marker(out)["complete"] is True


def test_results_are_refused_before_the_analysis_runs_and_replaced_with_overwrite(tmp_path, capsys):
    out = tmp_path / "reports"
    decode = ["neurons", "decode", "--layers", "3", "--k", "5", "--out", str(out)]
    assert main(decode) == 0
    refused(decode, capsys, r"already holds neurons.safetensors, neurons.json, classes.json, decode.html from an earlier run; "
            r"pass --overwrite true", unchanged=out)
    sparsity = ["sparsity", "--n-batches", "1", "--batch-size", "2", "--ctx-len", "32", "--ks", "512,64", "--out", str(out)]
    assert main(sparsity) == 0  # another analysis beside it: nothing of the first is replaced
    assert set(marker(out)["results"]) == {"decode", "sparsity"}
    before = (out / "neurons.json").stat().st_mtime_ns
    assert main([*decode, "--overwrite"]) == 0
    assert (out / "neurons.json").stat().st_mtime_ns != before
    refused(["transcoder", "train", "--out", str(out)], capsys, r"holds the results of an analysis, not a transcoder run",
            unchanged=out)


def test_a_half_written_run_is_refused_by_its_readers(run_dir, tmp_path, capsys):
    """The issue's case: layers complete, one only a temporary file, no run.json: refused, never traced."""
    import shutil

    half = tmp_path / "half"
    shutil.copytree(run_dir, half)
    (half / "run.json").unlink()
    (half / "layer_1").mkdir()
    (half / "layer_1" / ".sae_weights.safetensors.x1.tmp").write_bytes(b"half a layer")
    state = marker(half)
    (half / ".interp.json").write_text(json.dumps({**state, "complete": False}))
    how = r"is incomplete: an unfinished transcoder run .*resume it with `interp transcoder train --out .*half --resume true`"
    refused(["transcoder", "eval", str(half), "--tokens", "2k", "--out", str(tmp_path / "eval")], capsys, how, unchanged=half)
    refused(["circuit", "trace", "--transcoders", str(half), "--prompt", "a b", "--out", str(tmp_path / "graph")], capsys,
            how, unchanged=half)
    refused(["transcoder", "train", *TRANSCODER[2:], "--out", str(half)], capsys,
            r"holds an unfinished transcoder run .*resume it with .*, pass --overwrite true to start again", unchanged=half)
