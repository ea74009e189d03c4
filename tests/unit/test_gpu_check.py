"""The GPU check script (benchmarks/gpu): its failure path without a GPU, and every step at
smoke shapes on the CPU (the GPU numbers themselves come from running it on a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: run benchmarks/gpu/run.sh itself")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_run_sh_without_a_gpu_fails_at_once_with_one_sentence():
    done = subprocess.run(["bash", "benchmarks/gpu/run.sh"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == ["gpu check: no CUDA device is visible to torch; run this on a machine with one NVIDIA GPU"]


def test_check_py_without_a_gpu_refuses_unless_allowed(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu/check.py", "--out", str(tmp_path)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "no CUDA device" in done.stderr
    assert not list(tmp_path.iterdir())


def test_every_step_runs_on_the_cpu_at_smoke_shapes(tmp_path):
    steps = "kernel_timings,training,cache,decode"  # the kernel tests themselves run in this suite already
    done = subprocess.run([sys.executable, "benchmarks/gpu/check.py", "--allow-cpu", "--smoke", "--steps", steps,
                           "--out", str(tmp_path)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["name"] for s in record["steps"]] == steps.split(",")
    assert all(s["ok"] for s in record["steps"]), record["steps"]
    by_name = {s["name"]: s["results"] for s in record["steps"]}
    timing = by_name["kernel_timings"]["backends"]["torch"]
    assert timing["step_tflops"] >= 0 and timing["topk_ms"] > 0
    assert by_name["training"]["interp"]["ms_per_step"] > 0
    assert by_name["cache"]["tokens_per_s"] > 0 and by_name["decode"]["neurons"] == 2 * 128
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert markdown.count("| yes |") == 4
