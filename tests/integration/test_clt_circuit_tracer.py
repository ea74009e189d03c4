"""circuit-tracer 0.5.0 reads the cross-layer transcoders interp writes, and interp reads the ones it writes.

circuit-tracer is not one of interp's dependencies (it pins transformers < 5), so the test
builds a side environment: a venv over this interpreter's packages
(``--system-site-packages``) with ``pip install --no-deps circuit-tracer==0.5.0`` (from the
package index pip is configured with; the CLT module needs only torch, numpy and
safetensors). Each side of the round trip runs circuit-tracer's own code in that venv. When
the venv or the install cannot be made (no index reachable), the tests skip, saying why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from interp.transcoders import load_run
from interp.transcoders.clt import CrossLayerTranscoder
from interp.transcoders.clt_format import load_clt, save_clt

pytestmark = pytest.mark.slow

VERSION = "0.5.0"

# In the side environment: load interp's files with circuit-tracer's load_clt and run them.
READ_OURS = r"""
import json, sys, torch
from circuit_tracer.transcoder.cross_layer_transcoder import load_clt
args = json.loads(sys.argv[1])
clt = load_clt(args["dir"], feature_input_hook=args["hook"], dtype=torch.float32, device=torch.device("cpu"),
               lazy_decoder=args["lazy"])
x = torch.load(args["x"])
with torch.no_grad():
    acts = clt.encode(x)
    y = clt.forward(x)
torch.save({"acts": acts, "y": y, "skip": clt.W_skip is not None, "n_layers": clt.n_layers}, args["out"])
"""

# In the side environment: a random circuit-tracer CLT, saved with its own to_safetensors.
WRITE_THEIRS = r"""
import json, sys, torch
from circuit_tracer.transcoder.cross_layer_transcoder import CrossLayerTranscoder
args = json.loads(sys.argv[1])
L, F, d = args["shape"]
torch.manual_seed(0)
clt = CrossLayerTranscoder(L, F, d, activation_function=args["act"], lazy_decoder=False, device=torch.device("cpu"),
                           dtype=torch.float32)
with torch.no_grad():
    clt.W_enc.normal_()
    clt.b_enc.normal_()
    clt.b_dec.normal_()
    for w in clt.W_dec:
        w.normal_()
    if args["act"] == "jump_relu":
        clt.activation_function.threshold.uniform_(0.2, 1.0)
clt.to_safetensors(args["dir"])
x = torch.load(args["x"])
with torch.no_grad():
    torch.save({"acts": clt.encode(x), "y": clt.forward(x)}, args["out"])
"""


@pytest.fixture(scope="module")
def side_python(tmp_path_factory) -> str:
    venv = tmp_path_factory.mktemp("circuit_tracer") / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], capture_output=True, text=True, check=False,
                          timeout=300)
    if made.returncode != 0:
        pytest.skip(f"cannot build a side environment for circuit-tracer: {made.stderr.strip()[-300:]}")
    python = str(venv / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "install", "--no-deps", "-q", f"circuit-tracer=={VERSION}"],
                         capture_output=True, text=True, timeout=600, check=False)
    if pip.returncode != 0:
        pytest.skip(f"cannot install circuit-tracer {VERSION} in the side environment (no package index?): {pip.stderr.strip()[-300:]}")
    return python


def side(python: str, script: str, args: dict) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", script, json.dumps(args)], capture_output=True, text=True, timeout=600, check=False)


def ours(settings: dict, seed: int = 0) -> CrossLayerTranscoder:
    L, d, F = 3, 8, 10
    g = torch.Generator().manual_seed(seed)
    clt = CrossLayerTranscoder.from_weights(
        torch.randn(L, d, F, generator=g), torch.randn(L, F, generator=g) + 0.5,
        [torch.randn(F, L - i, d, generator=g) for i in range(L)], torch.randn(L, d, generator=g),
        threshold=0.2 + torch.rand(L, F, generator=g) if settings.get("activation") == "jumprelu" else None, **settings,
    )
    if settings.get("topk_over") == "all":
        clt.topk_threshold.fill_(0.7)
    return clt


@pytest.mark.parametrize(
    "settings",
    [{"activation": "relu"}, {"activation": "jumprelu"}, {"activation": "topk", "k": 9, "topk_over": "all"},
     {"activation": "relu", "input_site": "ln2_normalized"}],
    ids=["relu", "jumprelu", "topk-all", "relu-ln2-normalized"],
)
@pytest.mark.parametrize("lazy", [False, True])
def test_circuit_tracer_loads_what_interp_writes(tmp_path, side_python, settings, lazy):
    clt = ours(settings)
    save_clt(clt, tmp_path / "clt")
    x = torch.randn(3, 12, 8)  # circuit-tracer's [n_layers, positions, d_model]
    torch.save(x, tmp_path / "x.pt")
    hook = json.loads((tmp_path / "clt" / "config.yaml").read_text())["feature_input_hook"]
    assert hook == {"resid_mid": "hook_resid_mid", "ln2_normalized": "ln2.hook_normalized"}[clt.cfg.input_site]
    done = side(side_python, READ_OURS, {"dir": str(tmp_path / "clt"), "hook": hook, "lazy": lazy,
                                         "x": str(tmp_path / "x.pt"), "out": str(tmp_path / "out.pt")})
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        want_y, want_acts = clt.forward_with_activations(x.transpose(0, 1))
    assert theirs["n_layers"] == 3 and theirs["skip"] is False
    torch.testing.assert_close(theirs["acts"], want_acts.transpose(0, 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(theirs["y"], want_y.transpose(0, 1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("settings", [{"activation": "topk", "k": 3}, {"activation": "relu", "skip_connection": True}],
                         ids=["topk-per-layer", "skip"])
def test_circuit_tracer_refuses_what_it_would_compute_differently(tmp_path, side_python, settings):
    clt = ours(settings)
    if clt.cfg.skip_connection:
        with torch.no_grad():
            clt.W_skip.normal_()
    save_clt(clt, tmp_path / "clt")
    torch.save(torch.randn(3, 4, 8), tmp_path / "x.pt")
    done = side(side_python, READ_OURS, {"dir": str(tmp_path / "clt"), "hook": "hook_resid_mid", "lazy": False,
                                         "x": str(tmp_path / "x.pt"), "out": str(tmp_path / "out.pt")})
    assert done.returncode != 0 and "W_enc_0.safetensors" in done.stderr
    back = load_clt(tmp_path / "clt")  # interp reads them exactly
    x = torch.randn(20, 3, 8)
    with torch.no_grad():
        torch.testing.assert_close(back(x), clt(x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("act", ["relu", "jump_relu"])
def test_interp_loads_what_circuit_tracer_writes(tmp_path, side_python, act):
    x = torch.randn(3, 12, 8)
    torch.save(x, tmp_path / "x.pt")
    done = side(side_python, WRITE_THEIRS, {"shape": [3, 10, 8], "act": act, "dir": str(tmp_path / "clt"),
                                            "x": str(tmp_path / "x.pt"), "out": str(tmp_path / "out.pt")})
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = torch.load(tmp_path / "out.pt")
    for lazy in (False, True):
        clt = load_run(tmp_path / "clt", lazy_decoder=lazy)
        assert isinstance(clt, CrossLayerTranscoder) and clt.layers == [0, 1, 2] and clt.lazy == lazy
        assert clt.cfg.activation == {"relu": "relu", "jump_relu": "jumprelu"}[act]
        with torch.no_grad():
            y, acts = clt.forward_with_activations(x.transpose(0, 1))
        torch.testing.assert_close(acts.transpose(0, 1), theirs["acts"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(y.transpose(0, 1), theirs["y"], rtol=1e-5, atol=1e-4)
    assert not Path(tmp_path / "clt" / "config.yaml").exists()
