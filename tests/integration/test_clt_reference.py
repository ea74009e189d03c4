"""`interp transcoder train --arch clt` and `interp transcoder eval --baseline` on the reference model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from interp.transcoders import EvalResult, load_run
from interp.transcoders.clt import CrossLayerTranscoder


def interp_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "interp", *args], env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_cli_trains_a_clt_and_evaluates_it_beside_per_layer_transcoders(tmp_path):
    common = ["--model", "reference", "--layers", "0,1", "--k", "8", "--expansion", "2", "--tokens", "8k",
              "--batch-size", "512", "--device", "cpu", "--progress", "false"]
    done = interp_cli("transcoder", "train", "--arch", "clt", *common, "--out", str(tmp_path / "clt"))
    assert "circuit-tracer's CLT layout" in done.stdout and "layer 1" in done.stdout
    interp_cli("transcoder", "train", "--arch", "topk", *common, "--out", str(tmp_path / "tc"))
    clt = load_run(tmp_path / "clt")
    assert isinstance(clt, CrossLayerTranscoder) and clt.layers == [0, 1]
    assert clt.hook_names_in == ["blocks.0.hook_resid_mid", "blocks.1.hook_resid_mid"]
    done = interp_cli("transcoder", "eval", str(tmp_path / "clt"), "--tokens", "1k", "--device", "cpu",
                      "--baseline", str(tmp_path / "tc"))
    assert "cross-layer" in done.stdout and "per-layer" in done.stdout
    result = EvalResult.load(tmp_path / "clt" / "eval" / "eval.json")
    assert result.kind == "cross-layer" and result.baseline.kind == "per-layer"
    assert result.total_l0 <= 16 + 1e-6 and result.baseline.total_l0 <= 16 + 1e-6
    assert result.ce_all_spliced < result.ce_all_zero_ablated and len(result.cross_layer.decoder_share) == 2
    html = (tmp_path / "clt" / "eval" / "eval.html").read_text()
    assert "Cross-layer transcoder" in html and "Against the baseline run" in html
