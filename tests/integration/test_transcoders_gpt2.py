"""A short TopK run on one layer at GPT-2 small's shape, then its evaluation.

The run and its evaluation (what they produce and record) are checked on a GPT-2-small-shaped
checkpoint with random weights on every run, and on the real weights when present. That the
run explains most of the MLP and recovers most of the CE gap holds for the trained model only
(marked ``gpt2``). The token source is the default, the reference corpus read as text: it is
endless, so asking for 96k tokens cannot run out.
"""

from __future__ import annotations

import pytest

from interp.config import parse_count
from interp.transcoders import EvalConfig, TrainConfig, evaluate, train

pytestmark = pytest.mark.slow


def layer6_run(model, spec: str, out, tokens: str, eval_tokens: str):
    cfg = TrainConfig(
        model=spec, layers="6", arch="topk", k=32, expansion=4, tokens=tokens, batch_size=1024, ctx_len=128,
        out=str(out), progress=False, device="cpu", checkpoint_every=None,
    )
    cfg.optim.lr = 2e-3
    result = train(cfg, model=model)
    assert result.config["data"] == "reference" and result.layers == [6]
    report = evaluate(str(out), EvalConfig(run=str(out), tokens=eval_tokens, device="cpu", progress=False), model=model)
    layer = report.layers[0]
    assert report.n_tokens == -(-parse_count(eval_tokens) // 128) * 128 and layer.layer == 6
    assert layer.l0 <= 32 and 0 <= layer.dead_fraction <= 1
    assert report.ce_clean > 0 and layer.ce_zero_ablated > 0 and layer.ce_spliced > 0
    return result, report


def test_gpt2_layer_transcoder_runs_and_evaluates(gpt2_like, gpt2_like_spec, tmp_path):
    layer6_run(gpt2_like, gpt2_like_spec, tmp_path / "tc", tokens="8k", eval_tokens="1k")


@pytest.mark.gpt2
def test_gpt2_layer_transcoder(tmp_path, gpt2_model):
    result, report = layer6_run(gpt2_model, "gpt2", tmp_path / "tc", tokens="96k", eval_tokens="4k")
    assert result.final["layer_6"]["FVU"] < 0.5
    layer = report.layers[0]
    assert layer.fvu < 0.6
    assert layer.recovered_vs_zero > 0.5, report.table()
