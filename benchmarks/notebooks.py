"""Wall time of every example notebook, run the way the notebook tests run them.

Each notebook in ``examples/`` is executed with ``nbclient`` (the runner of
``tests/acceptance/test_docs.py::test_example_notebook_runs``), in a fresh temporary working
directory, one after another. Recorded per notebook: the wall time of the whole execution
(kernel start included), each code cell's time (from the execution timestamps nbclient
writes into the cell metadata), the CPU seconds of the kernel process (user + system, from
``getrusage(RUSAGE_CHILDREN)`` once the kernel has exited), and the 1-minute load average
before and after, so a reader can tell an idle run from a busy one. README promises each
notebook runs in under 60 s on an idle 2-core machine. On a shared machine the wall time
measures the other jobs as much as the notebook; the kernel's CPU seconds with
``OMP_NUM_THREADS=1`` are what it would take on one idle core (its work, not its waiting).

Writes a JSON (``--out``) and replaces the ``notebooks`` section of docs/benchmarks.md
(``--no-doc`` to leave it alone)::

    python benchmarks/notebooks.py [--only 03_transcoders,04_trace_a_circuit] [--rounds 1]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _seconds(cell) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    return (_parse_time(end) - _parse_time(start)).total_seconds()


def _parse_time(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def run_notebook(path: Path, timeout: int = 600) -> dict:
    """Execute one notebook as the tests do; its wall time, per-cell times and load averages."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        client = NotebookClient(notebook, timeout=timeout, startup_timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": tmp}})
        start = time.perf_counter()
        error = None
        try:
            client.execute()
        except Exception as exc:  # noqa: BLE001 - recorded, and the run goes on to the next notebook
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel has exited and been reaped
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cells = [(i, _seconds(c)) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    return {
        "notebook": path.stem,
        "wall_s": wall,
        "cells_s": {str(i): s for i, s in cells},
        "cells_total_s": sum(s for _, s in cells if s is not None),
        "kernel_cpu_s": cpu,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "error": error,
    }


def markdown(result: dict) -> str:
    by_name: dict[str, list[dict]] = {}
    for run in result["runs"]:
        by_name.setdefault(run["notebook"], []).append(run)
    lines = [
        f"Command: `{result['command']}`. Date: {result['date']}. Machine: {result['machine']}.",
        "",
        "| notebook | wall s (each run) | cells s | kernel CPU s | slowest cell (s) | load avg (1 min) before / after |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in by_name.items():
        slow = max(runs[-1]["cells_s"].items(), key=lambda kv: kv[1] or 0.0)
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in runs)
        cells = ", ".join(f"{r['cells_total_s']:.1f}" for r in runs)
        cpus = ", ".join(f"{r['kernel_cpu_s']:.1f}" for r in runs)
        loads = ", ".join(f"{r['load_before']:.1f} / {r['load_after']:.1f}" for r in runs)
        error = f" (error: {runs[-1]['error']})" if runs[-1]["error"] else ""
        lines.append(f"| {name}{error} | {walls} | {cells} | {cpus} | cell {slow[0]}: {slow[1]:.1f} | {loads} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None, help="comma-separated notebook stems (default: all)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each notebook, interleaved")
    parser.add_argument("--out", default="benchmarks/results/notebooks.json")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args()
    paths = sorted((ROOT / "examples").glob("*.ipynb"))
    if args.only:
        wanted = set(args.only.split(","))
        paths = [p for p in paths if p.stem in wanted]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M+00:00")
    runs = []
    for _ in range(args.rounds):
        for path in paths:
            runs.append(run_notebook(path))
            r = runs[-1]
            print(f"{r['notebook']}: {r['wall_s']:.1f} s (cells {r['cells_total_s']:.1f} s), "
                  f"load {r['load_before']:.1f} -> {r['load_after']:.1f}{'; ' + r['error'] if r['error'] else ''}",
                  flush=True)
    import torch

    result = {
        "command": "python benchmarks/notebooks.py " + " ".join(sys.argv[1:]),
        "date": started,
        "machine": (f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU in this session, torch {torch.__version__}, "
                    f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"),
        "runs": runs,
        "median_wall_s": {p.stem: statistics.median(r["wall_s"] for r in runs if r["notebook"] == p.stem) for p in paths},
    }
    from docsections import publish

    publish(result, Path(args.out), markdown(result), "notebooks", "Example notebooks: wall time", doc=not args.no_doc)


if __name__ == "__main__":
    main()
