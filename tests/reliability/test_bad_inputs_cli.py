"""Bad input on the command line: one line ``interp: error: ...`` naming what was wrong, exit 2,
no traceback, and no existing file changed (issue 18).

Cases run in-process through ``interp.cli.main`` (fast); a few run ``python -m interp`` as a
user would. Placeholders are the artefacts of tests/support/artefacts.py (``{run}``,
``{store}``, ...), ``{tmp}`` a fresh directory and ``{bad}`` a folder of broken data files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.artefacts import tree_digest

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("one_thread")]

LONG_PROMPT = "the " * 200
TRAIN = ["transcoder", "train", "--layers", "0", "--tokens", "1k", "--batch-size", "256", "--out", "{tmp}/t"]
EVAL = ["transcoder", "eval", "{run}", "--tokens", "1k"]
CACHE = ["cache", "run", "--out", "{tmp}/c", "--layers", "0", "--n-tokens", "1k"]

CASES: list[tuple[list[str], str]] = [
    # prompts
    (["circuit", "trace", "--prompt", LONG_PROMPT, "--transcoders", "{run}", "--out", "{tmp}/g"], "202 tokens long but the model reads at most 128"),
    (["circuit", "trace", "--prompt", "", "--transcoders", "{run}", "--out", "{tmp}/g"], "the prompt is empty"),
    (["circuit", "trace", "--prompt", "hi", "--transcoders", "{store}", "--out", "{tmp}/g"], "is not a transcoder run"),
    (["circuit", "trace", "--prompt", "hi", "--transcoders", "{run}", "--out", "{tmp}/g", "--node-threshold", "2"], "--node-threshold must be in [0, 1]"),
    (["circuit", "trace", "--prompt", "hi", "--transcoders", "{run}", "--out", "{tmp}/g", "--contexts", "-1"], "--contexts must be at least 0"),
    (["circuit", "trace", "--prompt", "hi", "--transcoders", "{run}", "--out", "{tmp}/g", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["circuit", "trace", "--prompt", "hi", "--transcoders", "{run}", "--out", "{tmp}/g", "--data", "{bad}/empty.txt"], "holds no text"),
    # transcoder training settings and data
    ([*TRAIN, "--ctx-len", "0"], "--ctx-len must be at least 1"),
    ([*TRAIN, "--ctx-len", "500"], "exceed the model's n_ctx=128"),
    ([*TRAIN, "--expansion", "0"], "--expansion must be at least 1"),
    ([*TRAIN, "--batch-size", "0"], "--batch-size must be at least 1"),
    ([*TRAIN, "--k", "0"], "--k must be at least 1, got 0"),
    ([*TRAIN, "--k", "100000"], "--k must be between 1 and d_sae=2048"),
    ([*TRAIN, "--lr", "-1"], "--lr must be a positive number"),
    ([*TRAIN, "--decay", "2"], "--decay is a fraction of training"),
    ([*TRAIN, "--tokens", "-5"], "--tokens is not a count"),
    ([*TRAIN, "--out", "{file}"], "is an existing file"),
    ([*TRAIN, "--out", "{file}/run"], "a-file.txt is a file, not a directory"),
    ([*TRAIN, "--data", "{bad}/empty.txt"], "holds no text"),
    ([*TRAIN, "--data", "{bad}/latin1.txt"], "is not UTF-8 text"),
    ([*TRAIN, "--data", "{bad}/body.jsonl"], "has no field 'text'"),
    ([*TRAIN, "--data", "{bad}/broken.jsonl"], "is not valid JSON"),
    ([*TRAIN, "--data", "{bad}/list.jsonl"], "is not a JSON object"),
    ([*TRAIN, "--data", "{bad}/missing.txt"], "no such data file"),
    ([*TRAIN, "--data", "{bad}/no/such/file"], "no such data file"),
    ([*TRAIN, "--cache", "{lying_store}"], "the manifest does not describe its shards"),
    ([*TRAIN, "--cache", "{file}"], "has no manifest.json"),
    ([*TRAIN, "--cache", "{store}", "--model", "{other}"], "were cached from"),
    # transcoder evaluation
    ([*EVAL, "--batch-size", "0"], "--batch-size must be at least 1"),
    ([*EVAL, "--ctx-len", "0"], "--ctx-len must be at least 1"),
    ([*EVAL, "--dense-threshold", "2"], "--dense-threshold must be in [0, 1]"),
    ([*EVAL, "--out", "{file}"], "is an existing file"),
    ([*EVAL, "--data", "{bad}/empty.txt"], "holds no text"),
    ([*EVAL, "--model", "{other}"], "these transcoders were trained on"),
    (["transcoder", "eval", "{store}"], "is not a transcoder run"),
    # caching
    ([*CACHE, "--n-tokens", "0"], "--n-tokens must be at least 1"),
    ([*CACHE, "--ctx-len", "1000"], "exceed the model's n_ctx=128"),
    ([*CACHE, "--out", "{file}"], "is an existing file"),
    ([*CACHE, "--data", "{bad}/empty.txt"], "holds no text"),
    ([*CACHE, "--data", "{bad}/short.txt"], "gives only 0 contexts of 128 tokens, fewer than one batch of 32"),
    ([*CACHE, "--layers", "9"], "layer 9 out of range"),
    ([*CACHE, "--hooks", "blocks.0.hook_mlp_out"], "pass either --hooks or --sites/--layers"),
    ([*CACHE, "--shard-mb", "0"], "--shard-mb must be positive"),
    ([*CACHE, "--resume", "true", "--overwrite", "true"], "--resume and --overwrite exclude each other"),
    (["cache", "info", "{file}"], "is not an activation store"),
    (["cache", "info", "{lying_store}"], "but the manifest says"),
    # codebooks
    (["codebook", "train", "--n-codes", "0", "--out", "{tmp}/cb"], "--n-codes must be at least 1"),
    (["codebook", "train", "--n-codes", "16", "--k", "100", "--out", "{tmp}/cb"], "must not exceed --n-codes"),
    (["codebook", "train", "--out", "{file}"], "is an existing file"),
    (["codebook", "train", "--layers", "0", "--ctx-len", "1000", "--steps", "1", "--out", "{tmp}/cb"], "--ctx-len 1000 is longer than the model's context"),
    (["codebook", "search", "--run", "{codebooks}"], "give exactly one property"),
    (["codebook", "search", "--run", "{codebooks}", "--label", "x", "--data", "{file}"], "--label needs --data reference"),
    (["codebook", "report", "--run", "{run}"], "holds no trained codebooks"),
    (["codebook", "report", "--run", "{codebooks}", "--ctx-len", "1000"], "--ctx-len 1000 is longer than the model's context"),
    (["codebook", "search", "--run", "{codebooks}", "--regex", "a", "--ctx-len", "1"], "--ctx-len must be at least 2"),
    # neurons, sparsity, redundancy, units, reference, info
    (["neurons", "decode", "--out", "{file}"], "is an existing file"),
    (["neurons", "clamp", "--layer", "9", "--neuron", "0", "--targets", "1"], "--layer must be in [0, 4)"),
    (["neurons", "clamp", "--layer", "0", "--neuron", "0", "--targets", "1", "--ctx-len", "1000"], "--ctx-len 1000 is longer than the model's context"),
    (["sparsity", "--n-batches", "0"], "--n-batches must be at least 1"),
    (["sparsity", "--ks", "0"], "--ks must all be at least 1"),
    (["sparsity", "--out", "{file}"], "is an existing file"),
    (["redundancy", "--n-calibration", "0"], "--n-calibration must be at least 1"),
    (["redundancy", "--ctx-len", "1000", "--out", "{tmp}/red"], "--ctx-len 1000 is longer than the model's context"),
    (["units", "--transcoders", "{tmp}/none", "--out", "{tmp}/u"], "no transcoders at"),
    (["units", "--ctx-len", "1", "--out", "{tmp}/u"], "--ctx-len must be at least 2"),
    (["units", "--transcoders", "{run}", "--model", "{other}", "--out", "{tmp}/u", "--n-contexts", "2"], "these transcoders were trained on"),
    (["reference", "train", "--steps", "0", "--out", "{tmp}/r"], "--steps must be at least 1"),
    (["reference", "train", "--out", "{file}"], "is an existing file"),
    (["reference", "eval", "--n-prompts", "0"], "--n-prompts must be at least 1"),
    (["info", "--model", "{file}"], "a-file.txt"),
    (["--threads", "0", "info"], "--threads must be >= 1"),
]


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> Path:
    """Data files a user might pass by mistake."""
    folder = tmp_path_factory.mktemp("bad-data")
    (folder / "empty.txt").write_text("")
    (folder / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (folder / "body.jsonl").write_text('{"body": "no text field"}\n')
    (folder / "broken.jsonl").write_text('{"text": "unterminated\n')
    (folder / "list.jsonl").write_text('["a", "b"]\n')
    (folder / "short.txt").write_text("a few words, far fewer than one batch of contexts\n")
    return folder


def _fill(argv: list[str], paths, tmp: Path, bad: Path) -> list[str]:
    import re

    def one(text: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: str({"tmp": tmp, "bad": bad}.get(m[1]) or paths[m[1]]), text)

    return [one(a) for a in argv]


def _check_one_line(code, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " ", "WARNING"))]
    assert len(lines) == 1, err
    assert lines[0].startswith("interp") and "error: " in lines[0], err
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("argv", "fragment"), CASES, ids=[" ".join(a)[:70] for a, _ in CASES])
def test_bad_command_line(argv, fragment, artefact_paths, bad_data, tmp_path, capsys):
    from interp.cli import main

    argv = _fill(argv, artefact_paths, tmp_path, bad_data)
    watched = [p for p in (*artefact_paths.values(), bad_data) if Path(p).exists()]
    before = tree_digest(*watched)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    _check_one_line(code, capsys.readouterr().err, fragment)
    assert tree_digest(*watched) == before, "a refused command changed an existing file"
    assert not any(tmp_path.iterdir()), f"a refused command left files: {list(tmp_path.iterdir())}"


SUBPROCESS = [
    (["transcoder", "train", "--tokens", "0"], "--tokens must be at least 1"),
    (["cache", "info", "{tmp}/nothing"], "does not exist"),
]


@pytest.mark.parametrize(("argv", "fragment"), SUBPROCESS, ids=[" ".join(a) for a, _ in SUBPROCESS])
def test_bad_command_line_in_a_real_process(argv, fragment, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "interp", *argv], capture_output=True, text=True, env=env, timeout=300)
    _check_one_line(proc.returncode, proc.stderr, fragment)
    assert proc.stdout == ""


def test_an_out_below_a_directory_without_write_permission_is_refused(tmp_path, capsys, monkeypatch):
    from interp.cli import main

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))  # root may write anywhere
    code = main(["transcoder", "train", "--layers", "0", "--tokens", "1k", "--out", str(locked / "run")])
    _check_one_line(code, capsys.readouterr().err, f"{locked} is not writable by this user; choose another --out")
    assert not any(locked.iterdir())


def test_debug_shows_the_traceback(artefact_paths, tmp_path):
    from interp.cli import main
    from interp.errors import TargetError

    with pytest.raises(TargetError, match="tokens long"):
        main(["circuit", "trace", "--prompt", LONG_PROMPT, "--transcoders", str(artefact_paths["run"]), "--out", str(tmp_path / "g"), "--debug"])
