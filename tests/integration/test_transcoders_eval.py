"""Evaluation against ground truth: a transcoder that *is* the MLP recovers all of the CE loss."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from interp.transcoders import EvalResult, evaluate, splice


def tiny_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=40, n_ctx=16,
        act_fn="relu", normalization_type="LN", seed=0, device="cpu",
    )
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.W_out.mul_(4.0)  # make the MLPs matter for the loss
    return model


def test_exact_transcoder_recovers_everything_and_report_renders(tmp_path, exact_transcoder):
    model = tiny_model()
    tokens = torch.randint(0, 40, (24, 16), generator=torch.Generator().manual_seed(0))
    transcoders = {0: exact_transcoder(model, 0), 1: exact_transcoder(model, 1)}
    with torch.no_grad(), splice(model, transcoders):
        spliced = model(tokens)
    torch.testing.assert_close(spliced, model(tokens), rtol=1e-5, atol=1e-5)  # hooks were removed again
    result = evaluate(transcoders, model=model, tokens=tokens)
    assert result.ce_all_spliced == pytest.approx(result.ce_clean, abs=1e-5)
    assert result.ce_all_zero_ablated > result.ce_clean + 0.01
    for layer in result.layers:
        assert layer.fvu < 1e-8
        assert layer.recovered_vs_zero == pytest.approx(1.0, abs=1e-3)
        assert 0 < layer.l0 < 32
    assert result.recovered_all_vs_zero == pytest.approx(1.0, abs=1e-3)
    # a useless transcoder (all outputs zero) recovers nothing of the zero-ablation gap
    broken = {0: exact_transcoder(model, 0)}
    with torch.no_grad():
        broken[0].W_dec.zero_()
        broken[0].b_dec.zero_()
    assert evaluate(broken, model=model, tokens=tokens).layers[0].recovered_vs_zero == pytest.approx(0.0, abs=1e-4)
    result.save(tmp_path / "eval.json")
    again = EvalResult.load(tmp_path / "eval.json")
    assert again.layers == result.layers and len(again.features) == len(result.features) > 0
    html = result.to_html()
    assert "Fraction of CE loss recovered" in html and "latent" in html
    assert "<script src=" not in html  # plotly inlined: opens offline


@pytest.mark.slow
def test_cli_train_then_eval_writes_report(tmp_path):
    out = tmp_path / "tc"
    common = {"OMP_NUM_THREADS": "1"}
    import os

    env = {**os.environ, **common}
    train = [sys.executable, "-m", "interp", "transcoder", "train", "--model", "reference", "--layers", "0,3",
             "--arch", "topk", "--k", "8", "--expansion", "2", "--tokens", "8k", "--batch-size", "512",
             "--device", "cpu", "--progress", "false", "--out", str(out)]
    done = subprocess.run(train, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "layer_3" in done.stdout
    evaluate_cmd = [sys.executable, "-m", "interp", "transcoder", "eval", str(out), "--tokens", "1k", "--device", "cpu"]
    done = subprocess.run(evaluate_cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "eval" / "eval.html").stat().st_size < 200_000  # plotly.js beside it, once per folder
    assert (out / "eval" / "plotly.min.js").stat().st_size > 1_000_000
    result = EvalResult.load(out / "eval" / "eval.json")
    assert [r.layer for r in result.layers] == [0, 3]
    assert all(0 < r.l0 <= 8 for r in result.layers)
