"""Two CPU processes under torchrun (gloo) train the same transcoders as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from interp.transcoders import formats

COMMON = [
    "transcoder", "train", "--model", "reference", "--layers", "0,1", "--arch", "relu", "--expansion", "2",
    "--tokens", "6144", "--batch-size", "512", "--ctx-len", "64", "--lr", "3e-3", "--device", "cpu",
    "--progress", "false", "--checkpoint-every", "6",
]


def torchrun(args: list[str], nproc: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prefix = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", "29517", "-m", "interp"]
    done = subprocess.run(prefix + args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    from interp.cli import main

    assert main(COMMON + ["--out", str(tmp_path / "one")]) == 0  # one process, in this one
    torchrun(COMMON + ["--out", str(tmp_path / "data")], 2)
    torchrun(COMMON + ["--out", str(tmp_path / "layers"), "--parallel", "layers"], 2)
    for layer in (0, 1):
        one = formats.load(tmp_path / "one" / f"layer_{layer}")
        data = formats.load(tmp_path / "data" / f"layer_{layer}")
        layers = formats.load(tmp_path / "layers" / f"layer_{layer}")
        for name, p in one.named_parameters():
            # data-parallel: the gradient is summed in another order, so equal to float tolerance
            torch.testing.assert_close(getattr(data, name), p, rtol=1e-3, atol=1e-4, msg=f"data-parallel {name}")
            # layer-parallel: each process runs exactly the single-process arithmetic for its layer
            torch.testing.assert_close(getattr(layers, name), p, rtol=1e-5, atol=1e-6, msg=f"layer-parallel {name}")
    assert (tmp_path / "data" / "run.json").is_file() and (tmp_path / "layers" / "run.json").is_file()


CLT = [
    "transcoder", "train", "--model", "reference", "--layers", "0,1", "--arch", "clt", "--activation", "topk",
    "--topk-over", "all", "--k", "16", "--expansion", "2", "--tokens", "6144", "--batch-size", "512", "--ctx-len", "64",
    "--lr", "3e-3", "--device", "cpu", "--progress", "false",
]


@pytest.mark.slow
def test_cross_layer_transcoder_two_processes_match_one(tmp_path):
    """Data-parallel CLT training equals one process (its TopK threshold, a trained buffer, too);
    --parallel layers refuses a single module spread over two processes."""
    from interp.cli import main
    from interp.transcoders import load_run

    assert main(CLT + ["--out", str(tmp_path / "one")]) == 0
    torchrun(CLT + ["--out", str(tmp_path / "data")], 2)
    one, data = load_run(tmp_path / "one"), load_run(tmp_path / "data")
    for name, tensor in one.state_dict().items():
        torch.testing.assert_close(data.state_dict()[name], tensor, rtol=1e-3, atol=1e-4, msg=f"data-parallel {name}")
    assert float(one.topk_threshold) > 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prefix = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518", "-m", "interp"]
    done = subprocess.run(prefix + CLT + ["--out", str(tmp_path / "layers"), "--parallel", "layers"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "at most one process per module" in done.stdout + done.stderr
