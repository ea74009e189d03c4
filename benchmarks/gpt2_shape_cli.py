"""Every CLI capability that takes a model, run once on a GPT-2-small-shaped random checkpoint.

The checkpoint is ``tests/support/gpt2_shaped.py``'s: GPT-2 small's ``GPT2Config`` (12 layers,
d_model 768, 12 heads, d_mlp 3,072, 1,024 positions, 50,257 tokens) with random weights and a
byte-level BPE tokenizer padded to GPT-2's 50,257 tokens, saved with ``save_pretrained``: a
local Hugging Face directory, loaded the way a user's own checkpoint is. It is built into
``--dir`` when that holds no ``config.json`` and reused when it does.

Each command runs as ``python -m interp ...`` in its own process, one after another (later
ones read what earlier ones wrote: the cache, the transcoder run, the codebook run). Per
command: wall time, the peak resident memory of its process (``ru_maxrss`` from ``os.wait4``),
the exit code, the last line of its error output when it failed, and the 1-minute load
average before it. Settings are small (a few thousand tokens, one layer where a command
allows choosing) but the shapes are GPT-2 small's: transcoders have 24,576 latents with
k = 32, neuron decoding covers all 36,864 neurons against the 50,257-token unembedding.

Writes ``--out`` (JSON) and replaces the ``gpt2-shape-cli`` section of docs/benchmarks.md
(``--no-doc`` to leave it alone)::

    python benchmarks/gpt2_shape_cli.py --threads 1 [--dir runs/benchmarks/gpt2-shaped] [--only "cache run,info"]

On a machine other jobs share, ``--threads 1`` (passed to every command) avoids torch's
threads waiting for each other (docs/circuits.md, pitfalls).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = 5
PROMPT = "The war lasted from the year 1732 to the year 17"


def commands(model: str, work: Path) -> list[tuple[str, list[str]]]:
    """``(name, argv after 'interp')`` in the order they run; later ones read earlier outputs."""
    cache, run, cached_run, books = work / "cache", work / "tc", work / "tc_cached", work / "codebooks"
    tc = ["--arch", "topk", "--expansion", "32", "-k", "32", "--layers", str(LAYER), "--batch-size", "4096"]
    return [
        ("info", ["info", "--model", model]),
        ("cache run", ["cache", "run", "--model", model, "--layers", str(LAYER),
                       "--n-tokens", "16k", "--ctx-len", "128", "--batch-size", "16", "--noprogress", "--out", str(cache)]),
        ("cache info", ["cache", "info", str(cache), "--verify"]),
        ("transcoder train (streaming)", ["transcoder", "train", "--model", model, *tc, "--tokens", "16k",
                                          "--ctx-len", "128", "--noprogress", "--out", str(run)]),
        ("transcoder train (from the cache)", ["transcoder", "train", "--model", model, *tc, "--tokens", "16k",
                                               "--cache", str(cache), "--noprogress", "--out", str(cached_run)]),
        ("transcoder eval", ["transcoder", "eval", str(cached_run), "--tokens", "1k", "--ctx-len", "128",
                             "--batch-size", "4", "--noprogress", "--out", str(work / "eval")]),
        ("transcoder export", ["transcoder", "export", str(run), "--format", "saelens", "--out", str(work / "export")]),
        ("transcoder import", ["transcoder", "import", str(work / "export"), "--format", "saelens",
                               "--out", str(work / "imported")]),
        ("neurons decode", ["neurons", "decode", "--model", model, "--out", str(work / "decode")]),
        ("neurons clamp", ["neurons", "clamp", "--model", model, "--layer", str(LAYER), "--neuron", "0",
                           "--n-prompts", "8", "--n-random", "5", "--ctx-len", "64", "--out", str(work / "clamp")]),
        ("sparsity", ["sparsity", "--model", model, "--n-batches", "2", "--batch-size", "8", "--ctx-len", "64",
                      "--noprogress", "--out", str(work / "sparsity")]),
        ("redundancy", ["redundancy", "--model", model, "--n-calibration", "8", "--n-heldout", "8", "--ctx-len", "64",
                        "--schedules", "one-shot", "--max-drop", "4", "--timing-repeats", "1", "--noprogress",
                        "--out", str(work / "redundancy")]),
        ("circuit trace", ["circuit", "trace", "--model", model, "--transcoders", str(run), "--prompt", PROMPT,
                           "--contexts", "8", "--noprogress", "--out", str(work / "graph")]),
        ("codebook train", ["codebook", "train", "--model", model, "--sites", "mlp_out", "--layers", str(LAYER),
                            "--n-codes", "512", "--freeze-model", "true", "--steps", "20", "--batch-size", "4", "--ctx-len", "64",
                            "--kmeans-tokens", "2k", "--eval-batches", "1", "--noprogress", "--out", str(books)]),
        ("codebook report", ["codebook", "report", "--run", str(books), "--n-contexts", "16",
                             "--out", str(work / "codes")]),
        ("codebook search", ["codebook", "search", "--run", str(books), "--regex", " the$", "--n-contexts", "32",
                             "--out", str(work / "search")]),
        ("units", ["units", "--model", model, "--transcoders", str(run), "--codebooks", str(books),
                   "--layers", str(LAYER), "--n-contexts", "32", "--ctx-len", "64", "--noprogress",
                   "--out", str(work / "units")]),
    ]


def build_checkpoint(directory: Path) -> float:
    """Write the GPT-2-shaped checkpoint into ``directory`` unless it is there; seconds spent."""
    if (directory / "config.json").is_file():
        return 0.0
    sys.path.insert(0, str(ROOT / "tests"))
    from support.gpt2_shaped import save_checkpoint

    start = time.perf_counter()
    save_checkpoint(directory)
    return time.perf_counter() - start


def run_one(name: str, argv: list[str], logs: Path, threads: int | None) -> dict:
    """Run ``python -m interp ARGV``; wall time, peak RSS of its process, exit code."""
    full = [sys.executable, "-m", "interp", *(["--threads", str(threads)] if threads else []), *argv]
    log = logs / (name.replace(" ", "_").replace("(", "").replace(")", "") + ".log")
    load = os.getloadavg()[0]
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return {
        "name": name,
        "command": "interp " + shlex.join(argv),
        "wall_s": wall,
        "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9,  # Linux reports kilobytes
        "exit": proc.returncode,
        "error": tail[-1] if proc.returncode and tail else None,
        "load_1min": load,
        "log": str(log),
    }


def markdown(result: dict) -> str:
    lines = [
        (f"Command: `{result['command']}`. Date: {result['date']}. Machine: {result['machine']}. "
         f"Checkpoint: {result['checkpoint']}."),
        "",
        "| capability | measured (UTC) | wall s | peak RSS (GB) | exit | load avg (1 min) before | command |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in result["runs"]:
        shown = r["command"].replace(result["dir"], "DIR").replace(result["work"], "WORK").replace("|", "\\|")
        status = str(r["exit"]) if not r["exit"] else f"{r['exit']}: {r['error']}".replace("|", "\\|")
        lines.append(f"| {r['name']} | {r.get('date', result['date'])} | {r['wall_s']:.1f} | {r['peak_rss_gb']:.2f} | {status} | {r['load_1min']:.2f} | `{shown}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=os.environ.get("INTERP_GPT2_SHAPED_DIR", "runs/benchmarks/gpt2-shaped"),
                        help="checkpoint directory (built when it has no config.json)")
    parser.add_argument("--work", default="runs/benchmarks/gpt2-shape-cli", help="outputs of the commands (emptied)")
    parser.add_argument("--only", default=None,
                        help="comma-separated capability names (default: all); their rows replace those in --out")
    parser.add_argument("--threads", type=int, default=None, help="--threads for every command (default: unset)")
    parser.add_argument("--out", default="benchmarks/results/gpt2_shape_cli.json")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args()
    directory, work = (ROOT / args.dir).resolve(), (ROOT / args.work).resolve()
    built_s = build_checkpoint(directory)
    if work.exists() and not args.only:
        shutil.rmtree(work)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    out = ROOT / args.out
    # --only reruns some commands: their rows replace the same rows of an earlier run's JSON
    kept = []
    if wanted and out.exists():
        earlier = json.loads(out.read_text())
        for row in earlier["runs"]:  # in the paths of this run, and dated by the run that measured them
            row["command"] = row["command"].replace(earlier["dir"], str(directory)).replace(earlier["work"], str(work))
            row.setdefault("date", earlier["date"])
            kept.append(row)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M+00:00")
    runs = []
    for name, argv in commands(str(directory), work):
        if wanted and name not in wanted:
            continue
        runs.append({**run_one(name, argv, logs, args.threads), "date": started})
        r = runs[-1]
        print(f"{name}: {r['wall_s']:.1f} s, {r['peak_rss_gb']:.2f} GB, exit {r['exit']}"
              f"{'  ' + r['error'] if r['error'] else ''}", flush=True)
    import torch

    result = {
        "command": "python benchmarks/gpt2_shape_cli.py " + " ".join(sys.argv[1:]),
        "date": started,
        "machine": (f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU in this session, torch {torch.__version__}, "
                    f"--threads {args.threads or 'unset'}"),
        "checkpoint": ("GPT-2 small's shape, random weights (tests/support/gpt2_shaped.py), "
                       + (f"built in {built_s:.0f} s" if built_s else "reused")),
        "dir": str(directory),
        "work": str(work),
        "runs": [next((r for r in runs if r["name"] == k["name"]), k) for k in kept] if kept else runs,
    }
    from docsections import publish

    publish(result, out, markdown(result), "gpt2-shape-cli", "Every CLI capability at GPT-2 small's shape",
            doc=not args.no_doc)


if __name__ == "__main__":
    main()
