"""What the foundation issue must show about the bundled reference model."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from interp.reference.model import WEIGHTS_FILE, weights_dir
from interp.reference.tasks import TARGETS, evaluate


def test_bundled_weights_are_small_package_data():
    path = weights_dir() / WEIGHTS_FILE
    assert path.is_file(), "run `interp reference train --out interp/reference/weights`"
    assert path.stat().st_size <= 20 * 2**20


def test_reference_model_meets_every_task_target(reference_model):
    metrics = evaluate(reference_model)
    failed = {name: getattr(metrics, name) for name, ok in metrics.passed().items() if not ok}
    assert not failed, f"below target: {failed} (targets {TARGETS})"


def test_reference_model_has_the_required_architecture(reference_model):
    cfg = reference_model.cfg
    assert cfg.n_layers >= 2 and cfg.d_model >= 128 and cfg.d_mlp == 4 * cfg.d_model
    assert cfg.act_fn == "gelu_new" and cfg.positional_embedding_type == "standard"
    assert cfg.normalization_type in ("LN", "LNPre")  # LNPre once LayerNorm is folded


def test_reference_model_loads_offline_in_under_two_seconds():
    code = (
        "import time, transformer_lens\n"
        "from interp.models import load_model\n"
        "t = time.perf_counter(); load_model('reference', device='cpu'); print(time.perf_counter() - t)\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    import os

    env.update({k: v for k, v in os.environ.items() if k in ("HOME", "PYTHONPATH", "VIRTUAL_ENV")})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seconds = float(out.stdout.strip().splitlines()[-1])
    assert seconds < 2.0, f"load_model('reference') took {seconds:.2f} s"


def test_cli_reference_eval_prints_every_metric_and_passes():
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "interp.cli", "reference", "eval", "--n-prompts", "256"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    for name in TARGETS:
        assert name in out.stdout
    assert time.perf_counter() - start < 300


@pytest.mark.parametrize("spec", ["reference"])
def test_cli_info_lists_architecture_and_hook_points(spec):
    out = subprocess.run([sys.executable, "-m", "interp.cli", "info", "--model", spec], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "4 layers" in out.stdout and "blocks.0.ln2.hook_normalized" in out.stdout
