"""Sparsity measures on the planted density model, where every density is known exactly."""

from __future__ import annotations

import json

import pytest
import torch

from interp.planted import density_model, uniform_token_stream
from interp.errors import ConfigError
from interp.sparsity import (
    CoreSimilarity,
    SparsityAnalysis,
    SparsityConfig,
    SparsityResult,
    TopKCurve,
    core_similarity,
    default_ks,
    deft_density,
    keep_topk,
    measure,
    topk_curve,
    topk_thresholding,
)

ACTIVE = [0, 2, 5, 7, 10, 12, 15, 20]


@pytest.fixture(scope="module")
def planted():
    model, expected = density_model(active_tokens=ACTIVE, d_vocab=20, d_mlp=8)
    return model, expected, uniform_token_stream(20, repeats=8, ctx_len=16)


def test_planted_density_is_measured_exactly(planted):
    model, expected, stream = planted
    result = measure(model, [stream[:5], stream[5:]], skip_first=False, threshold=0.5, deft_eps=1e-2)
    layer = result.layers[0]
    assert layer.n_tokens == 160
    freq = torch.tensor(layer.frequency, dtype=torch.float64)
    assert torch.equal(freq, expected)
    assert torch.equal(torch.tensor(layer.nonzero_frequency, dtype=torch.float64), expected)
    assert layer.nonzero == layer.positive == layer.above == pytest.approx(sum(ACTIVE) / 160, abs=0)
    # activations are exactly 1 or 0, so the DEFT density is 1 / (1 + eps) times the density
    assert layer.deft == pytest.approx(layer.nonzero / 1.01, rel=1e-5)  # activations are 1 to float32 rounding
    assert layer.dead == 1 and layer.dense == 3  # dense: 12, 15 and 20 of 20 tokens; 10 of 20 is not > 0.5
    # token t activates every neuron j with t < ACTIVE[j]: the per-token histogram follows
    expected_counts = torch.zeros(9)
    for token in range(20):
        expected_counts[sum(token < a for a in ACTIVE)] += 8
    assert layer.token_counts == expected_counts.long().tolist()


def test_threshold_and_skip_first(planted):
    model, _, stream = planted
    above = measure(model, [stream], skip_first=False, threshold=1.0).layers[0]
    assert above.above == 0.0  # activations are exactly 1, never above 1
    skipped = measure(model, [stream], skip_first=True).layers[0]
    assert skipped.n_tokens == stream.shape[0] * (stream.shape[1] - 1)


def test_deft_density_limits():
    a = torch.tensor([0.0, 1e-4, 1.0, 100.0])
    d = deft_density(a, eps=1e-2)
    assert d[0] == 0 and d[1] < 1e-5 and d[3] > 0.9999


def test_measure_validates_inputs(planted):
    model, _, stream = planted
    with pytest.raises(ValueError, match="no tokens"):
        measure(model, [])
    with pytest.raises(ValueError, match="deft_eps"):
        measure(model, [stream], deft_eps=0.0)


def test_result_round_trip(tmp_path, planted):
    model, _, stream = planted
    result = measure(model, [stream])
    assert SparsityResult.load(result.save(tmp_path / "s.json")) == result
    html = result.to_html()
    assert "plotly" in html and "<script src=\"http" not in html
    text = result.summary()
    assert f"positive {result.mean('positive'):.4f}" in text and "dead" in text
    with pytest.warns(DeprecationWarning, match="summary"):
        assert result.table() == text  # the old name, kept as an alias


def test_results_written_before_the_result_base_still_load(tmp_path, planted):
    model, _, stream = planted
    result = measure(model, [stream])
    old = {k: v for k, v in result.to_dict().items() if k not in ("kind", "schema_version")}
    (tmp_path / "sparsity.json").write_text(json.dumps(old))
    assert SparsityResult.load(tmp_path) == result
    curve = topk_curve(model, stream, ks=[8, 2], progress=False)
    old = {k: v for k, v in curve.to_dict().items() if k not in ("kind", "schema_version")}
    assert old["increase"] == curve.increase  # the JSON keeps the derived increase for its readers
    (tmp_path / "topk.json").write_text(json.dumps(old))
    assert TopKCurve.load(tmp_path) == curve


def test_analysis_writes_the_three_results_and_one_page(tmp_path, planted):
    model, _, stream = planted
    groups = [[torch.tensor([0, 2, 5, 3]), torch.tensor([0, 2, 5, 4])], [torch.tensor([0, 11, 17, 6]), torch.tensor([0, 11, 17, 7])]]
    analysis = SparsityAnalysis(measure(model, [stream], progress=False), topk_curve(model, stream, ks=[8, 1], progress=False),
                                core_similarity(model, groups, alpha=1.0, beta=1.0, progress=False))
    paths = analysis.write(tmp_path)
    assert sorted(path.name for path in paths.values()) == ["core.json", "sparsity.html", "sparsity.json", "topk.json"]
    assert json.loads((tmp_path / "topk.json").read_text())["ks"] == [8, 1]
    assert SparsityResult.load(tmp_path) == analysis.density and CoreSimilarity.load(tmp_path) == analysis.core
    assert SparsityAnalysis.load(tmp_path) == analysis == SparsityAnalysis.load(analysis.save(tmp_path / "all.json"))
    html = paths["html"].read_text()
    assert "Top-k thresholding" in html and "CoreInfer core neurons" in html
    text = analysis.summary()
    assert all(part.summary() in text for part in (analysis.density, analysis.topk, analysis.core))
    assert repr(analysis).startswith("SparsityAnalysis(") and len(repr(analysis).splitlines()) == 4


def test_layers_are_read_like_every_other_command(planted):
    model, _, stream = planted
    assert measure(model, [stream], layers="0", progress=False) == measure(model, [stream], layers=None, progress=False)
    with pytest.raises(ConfigError, match="out of range"):
        topk_curve(model, stream, ks=[4], layers="0-1", progress=False)
    with pytest.raises(ConfigError, match="bad layers"):
        with topk_thresholding(model, 4, layers="first"):
            pass


@pytest.mark.parametrize(("settings", "message"), [
    ({"ks": "512,0"}, "^--ks must all be at least 1"), ({"ks": "many"}, "^--ks must be integers"),
    ({"n_batches": 0}, "^--n-batches must be at least 1"), ({"ctx_len": 1}, "^--ctx-len must be at least 2"),
    ({"alpha": 0.0}, "^--alpha must be in"), ({"beta": 1.5}, "^--beta must be in"), ({"deft_eps": 0.0}, "^--deft-eps"),
])
def test_config_errors_name_the_flag(settings, message):
    with pytest.raises(ConfigError, match=message):
        SparsityConfig(**settings)
    assert SparsityConfig(ks="512, 64,8").k_values() == [512, 64, 8] and SparsityConfig().k_values() is None


def test_topk_with_k_equal_d_mlp_changes_nothing(planted):
    model, _, stream = planted
    acts = torch.randn(3, 5, 8)
    assert torch.equal(keep_topk(acts, 8), acts)
    baseline = model(stream)
    with topk_thresholding(model, model.cfg.d_mlp):
        assert torch.equal(model(stream), baseline)
    curve = topk_curve(model, stream, ks=[8, 4, 1])
    assert curve.losses[0] == curve.baseline_loss
    assert curve.increase[0] == 0.0


def test_topk_keeps_exactly_k_and_removes_its_hooks(planted):
    model, _, stream = planted
    acts = torch.randn(4, 6, 8)
    kept = keep_topk(acts, 3)
    assert torch.all((kept != 0).sum(-1) == 3)
    assert torch.equal(kept.max(-1).values, acts.max(-1).values)
    with pytest.raises(RuntimeError):
        with topk_thresholding(model, 2):
            raise RuntimeError("boom")
    assert not model.hook_dict["blocks.0.mlp.hook_post"].fwd_hooks
    with pytest.raises(ValueError):
        keep_topk(acts, 9)
    assert default_ks(512)[:3] == [512, 256, 128] and default_ks(4) == [4, 2, 1]


def test_topk_thresholding_of_a_planted_stream_changes_the_loss(planted, tmp_path):
    model, _, stream = planted
    curve = topk_curve(model, stream, ks=[8, 1])
    assert curve.losses[1] != curve.losses[0]
    assert TopKCurve.load(curve.save(tmp_path / "k.json")) == curve


def test_progress_bars_show_on_stderr_and_can_be_turned_off(planted, capsys):
    model, _, tokens = planted
    measure(model, [tokens], progress=False)
    topk_curve(model, tokens, ks=[8, 4], progress=False)
    assert capsys.readouterr().err == ""
    measure(model, [tokens], progress=True)
    topk_curve(model, tokens, ks=[8, 4], progress=True)
    err = capsys.readouterr().err
    assert "sparsity" in err and "top-k curve" in err
