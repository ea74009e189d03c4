"""The units comparison at GPT-2 small's shape: on random weights every run, on the real weights
when present; that GPT-2's first MLP matters holds for the trained model only (marked ``gpt2``)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def units_comparison(model, tmp_path, tokens: str = "16k"):
    from interp.cache import StreamingActivations
    from interp.codebooks import Codebooks
    from interp.codebooks.training import kmeans_init
    from interp.transcoders import TrainConfig, train
    from interp.transcoders.data import required_hooks
    from interp.units import UnitsComparison, UnitsConfig, compare_units, labelled_data

    layers = [0, 5]
    data = labelled_data(model, n_contexts=16, ctx_len=64, seed=1)
    assert data.source == "token identity" and data.classes["colour"].any()
    # a small TopK transcoder per layer, trained on other text (the corpus as plain text, seed 7)
    train_tokens = labelled_data(model, n_contexts=256, ctx_len=64, seed=7).tokens
    source = StreamingActivations(model, required_hooks(layers), train_tokens)
    cfg = TrainConfig(model="gpt2", layers="0,5", arch="topk", k=32, expansion=4, tokens=tokens, batch_size=1024,
                      out=str(tmp_path / "tc"), device="cpu", progress=False, checkpoint_every=None)
    run = train(cfg, model=model, source=source)
    from interp.transcoders import load_run

    transcoders = load_run(run.out)
    books = Codebooks.create(model, ["mlp_out"], layers, n_codes=64, k=1)
    kmeans_init(model, books, iter(train_tokens.split(32)), 4096)
    result = compare_units(model, data.tokens, data.classes, transcoders=transcoders, codebooks=books,
                           groups=data.groups, cfg=UnitsConfig(batch_size=8), model_name="gpt2")
    assert [(r.layer, r.kind) for r in result.rows] == [(la, k) for la in layers for k in ("neurons", "transcoder", "codebook")]
    for row in result.rows:
        assert row.ce > 0 and row.fvu >= 0 and 0.0 <= row.specificity <= 1.0
    for layer in layers:
        assert result.row(layer, "transcoder").l0 <= 32 and result.row(layer, "codebook").l0 == 1
        assert result.row(layer, "neurons").kept == round(result.row(layer, "transcoder").l0)
        assert 0 < result.row(layer, "neurons").l0 < model.cfg.d_mlp
    assert UnitsComparison.load(result.save(tmp_path / "units.json")).rows == result.rows
    # every neuron kept: the neurons reproduce the MLP exactly
    full = compare_units(model, data.tokens[:4], {k: v[:4] for k, v in data.classes.items()},
                         layers=[0], cfg=UnitsConfig(neuron_k=model.cfg.d_mlp, batch_size=4, min_positives=1))
    assert full.row(0, "neurons").fvu < 1e-6
    assert full.row(0, "neurons").recovered == pytest.approx(1.0, abs=1e-3)
    assert torch.isfinite(torch.tensor(full.ce_clean))
    return result


def test_units_comparison_on_gpt2(gpt2_like, gpt2_like_spec, tmp_path):
    units_comparison(gpt2_like, tmp_path, tokens="16k" if gpt2_like_spec == "gpt2" else "4k")


@pytest.mark.gpt2
def test_gpt2_first_mlp_matters(gpt2_model, tmp_path):
    result = units_comparison(gpt2_model, tmp_path)
    assert result.ce_zero["0"] > result.ce_clean
