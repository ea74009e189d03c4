"""Evaluation against ground truth: a transcoder that *is* the MLP recovers all of the CE loss."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from support.full_forward import full_forward_ce

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


@pytest.mark.parametrize("family", ["reference", "pythia", "llama", "gemma2"])
def test_ce_passes_from_the_intervened_layer_equal_full_forwards(family, reference_model, family_models, planted_transcoder):
    """Starting each intervention's forward at its layer, on the clean residual, changes no number."""
    from interp.data import load_contexts
    from interp.transcoders.evaluation import _ce_passes

    model = reference_model if family == "reference" else family_models[family]
    layers = [1, model.cfg.n_layers - 1]
    d = model.cfg.d_model
    transcoders = {layer: planted_transcoder("topk", d=d, d_sae=2 * d, k=8, layer=layer) for layer in layers}
    tokens = load_contexts("reference", model.tokenizer, 6, 16, seed=3)
    g = torch.Generator().manual_seed(1)
    means = {layer: torch.randn(d, generator=g, dtype=torch.float64) for layer in layers}
    with torch.no_grad():
        expected = full_forward_ce(model, transcoders, tokens, means, batch_size=4)
        got = _ce_passes(model, transcoders, tokens, means, batch_size=4)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        values = value if isinstance(value, dict) else {"": value}
        mine = got[key] if isinstance(value, dict) else {"": got[key]}
        for layer, x in values.items():
            assert mine[layer] == pytest.approx(x, rel=1e-6, abs=1e-6), (key, layer)  # bit for bit on CPU in our runs
    assert got["zero"][layers[0]] != pytest.approx(got["clean"], abs=1e-4)  # the interventions matter


def test_first_pass_statistics_equal_the_whole_set_at_once(reference_model, planted_transcoder):
    """Firing counts, L0 and each latent's top contexts, accumulated batch by batch, equal what
    the activations of every token at once give."""
    from interp.data import load_contexts
    from interp.transcoders.data import layer_hooks
    from interp.transcoders.evaluation import EvalConfig, _first_pass

    model = reference_model
    d = model.cfg.d_model
    tc = planted_transcoder("relu", d=d, d_sae=3 * d, layer=2)
    tokens = load_contexts("reference", model.tokenizer, 10, 16, seed=5)
    cfg = EvalConfig(run="", batch_size=3, n_contexts=4, progress=False)
    with torch.no_grad():
        stats = _first_pass(model, {2: tc}, tokens, cfg)[2]
        _, cache = model.run_with_cache(tokens)
        hin, hout = layer_hooks(2)
        y_hat, acts = tc.forward_with_activations(cache[hin].reshape(tokens.numel(), -1))
    y = cache[hout].reshape(tokens.numel(), -1)
    assert stats["n"] == tokens.numel()
    assert torch.equal(stats["fired"], (acts > 0).sum(0)) and stats["l0_sum"] == (acts > 0).sum().item()
    assert 0 < stats["l0_sum"] < acts.numel()
    top = acts.topk(4, dim=0)
    torch.testing.assert_close(stats["top_val"], top.values)
    assert torch.equal(acts.gather(0, stats["top_idx"]), stats["top_val"])  # the indices point at those values
    torch.testing.assert_close(stats["y_sum"], y.double().sum(0))
    torch.testing.assert_close(stats["err"], (y - y_hat).double().pow(2).sum())


def test_report_contexts_read_as_the_tokenizer_writes_them():
    """Each feature card's context is the window's tokens as the tokenizer writes them there:
    concatenated, they are a stretch of the decoded text (the reference tokenizer strips a lone
    token's leading space, and joining vocabulary entries with " " doubled every space)."""
    import re

    from interp.models import load_model
    from interp.transcoders import Transcoder
    from interp.transcoders.html import _context

    model = load_model("reference")
    tok = model.tokenizer
    text = "The war lasted from the year 1745 to the year 1790, and the peace lasted longer."
    tokens = model.to_tokens([text, text.replace("war", "feud")], padding_side="right")
    d, g = model.cfg.d_model, torch.Generator().manual_seed(0)
    tc = Transcoder.from_weights(torch.randn(d, 32, generator=g), torch.zeros(32), torch.randn(32, d, generator=g) * 0.01)
    result = evaluate({1: tc}, model=model, tokens=tokens)
    decoded = [tok.decode(row, clean_up_tokenization_spaces=False) for row in tokens.tolist()]
    contexts = [c for card in result.features for c in card.contexts]
    assert len(contexts) >= 3
    for c in contexts:
        window = "".join(c["tokens"])
        assert any(window in d for d in decoded), window
        assert "  " not in window and c["tokens"][c["focus"]].strip()
        shown = re.sub(r"<[^>]+>", "", _context(c))
        assert shown == window.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # a file written before keeps rendering: vocabulary entries, word markers read as spaces
    old = {"tokens": ["▁The", "▁war", "▁lasted"], "focus": 1, "value": 1.0}
    assert re.sub(r"<[^>]+>", "", _context(old)) == " The war lasted"
