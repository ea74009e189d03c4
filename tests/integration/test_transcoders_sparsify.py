"""sparsify's own loader (eai-sparsify 1.3.3, installed without its dependencies into a virtual
environment this test builds on top of the system's packages) runs what
``interp transcoder export --format sparsify`` wrote and computes what interp computes; a coder
sparsify itself made imports into interp with equal outputs. Skipped, with pip's reason, where
the environment cannot be built."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from interp.cli import main
from interp.transcoders import formats, load_run, sparsify

SPARSIFY = "eai-sparsify==1.3.3"
D, D_SAE = 16, 64

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from sparsify import SparseCoder
    from sparsify.config import TranscoderConfig

    mode, folder, x_path, out_path = sys.argv[1:]
    x = torch.load(x_path)
    if mode == "make":  # a transcoder sparsify itself builds and saves, random weights
        torch.manual_seed(0)
        coder = SparseCoder(x.shape[1], TranscoderConfig(k=5, num_latents=48, skip_connection=True))
        with torch.no_grad():
            for p in coder.parameters():
                p.normal_(0, 0.3)
        coder.save_to_disk(folder + "/blocks.3.mlp")
    out = {}
    for name, coder in SparseCoder.load_many(folder, local=True).items():
        with torch.no_grad():
            top = coder.encode(x)
            acts = torch.zeros(x.shape[0], coder.num_latents).scatter_(-1, top.top_indices, top.top_acts)
            out[name] = {"out": coder(x).sae_out, "acts": acts, "k": coder.cfg.k, "transcode": coder.cfg.transcode,
                         "skip": coder.W_skip is not None}
    torch.save(out, out_path)
""")


@pytest.fixture(scope="module")
def sparsify_python(tmp_path_factory):
    """The python of a virtual environment with sparsify installed (no dependencies: torch and
    the rest come from the system's packages)."""
    venv = tmp_path_factory.mktemp("sparsify-venv")
    steps = [
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", SPARSIFY, "natsort", "schedulefree"],
    ]
    for step in steps:
        done = subprocess.run(step, check=False, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            pytest.skip(f"cannot build a virtual environment with {SPARSIFY}: {' '.join(step[:3])}... failed: {reason[0]}")
    return venv / "bin" / "python"


def run_sparsify(python, folder, x, tmp_path, mode: str = "load") -> dict:
    (tmp_path / "x.pt").unlink(missing_ok=True)
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "sparsify_script.py").write_text(SCRIPT)
    env = {**os.environ, "SPARSIFY_DISABLE_TRITON": "1"}  # CPU: sparsify's eager decoder
    done = subprocess.run(
        [str(python), str(tmp_path / "sparsify_script.py"), mode, str(folder), str(tmp_path / "x.pt"), str(tmp_path / "out.pt")],
        check=False, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(tmp_path / "out.pt")


def test_sparsify_loads_interp_exports_and_agrees(tmp_path, sparsify_python, planted_transcoder):
    tcs = {layer: planted_transcoder(name, D, D_SAE, k=6, layer=layer) for layer, name in enumerate(sparsify.EXPORTABLE)}
    for layer, tc in tcs.items():
        formats.save(tc, tmp_path / "run" / f"layer_{layer}", hook_name=tc.hook_name, hook_name_out=tc.hook_name_out)
    assert main(["transcoder", "export", str(tmp_path / "run"), "--format", "sparsify", "--out", str(tmp_path / "sp")]) == 0
    x = 2 * torch.randn(300, D, generator=torch.Generator().manual_seed(7)) + 1
    theirs = run_sparsify(sparsify_python, tmp_path / "sp", x, tmp_path)
    assert sorted(theirs) == [sparsify.hookpoint(layer) for layer in tcs]
    for layer, tc in tcs.items():
        got = theirs[sparsify.hookpoint(layer)]
        assert got["transcode"] is True and got["skip"] is tc.has_skip
        with torch.no_grad():
            assert (tc.encode(x) > 0).any()
            torch.testing.assert_close(got["out"], tc(x), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(got["acts"], tc.encode(x), rtol=1e-5, atol=1e-5)


def test_a_transcoder_sparsify_made_imports_with_equal_outputs(tmp_path, sparsify_python):
    x = torch.randn(200, D, generator=torch.Generator().manual_seed(8))
    (tmp_path / "native").mkdir()
    theirs = run_sparsify(sparsify_python, tmp_path / "native", x, tmp_path, mode="make")["blocks.3.mlp"]
    assert main(["transcoder", "import", str(tmp_path / "native"), "--format", "sparsify", "--out", str(tmp_path / "run")]) == 0
    ours = load_run(tmp_path / "run")
    assert list(ours) == [3] and ours[3].arch == "skip_topk" and ours[3].cfg.k == 5 and ours[3].cfg.d_sae == 48
    with torch.no_grad():
        torch.testing.assert_close(ours[3](x), theirs["out"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours[3].encode(x), theirs["acts"], rtol=1e-5, atol=1e-5)
