"""Clamp verification on the planted neuron model, and the hook scoping."""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import ConfigError
from interp.neurons import ClampConfig, ClampResult, clamp, clamp_test
from interp.planted import neuron_model


@pytest.fixture(scope="module")
def planted():
    return neuron_model(read_token=3, write_token=7, neuron=5)


def _tokens():
    return torch.tensor([[0, 1, 2, 4, 6, 8, 9, 10], [0, 11, 12, 13, 14, 15, 2, 1]])


def test_clamping_the_planted_neuron_raises_its_token(planted):
    model, p = planted
    result = clamp_test(model, p.layer, p.neuron, _tokens(), [p.write_token], value=2.0, n_random=6)
    assert result.clamped_prob > result.baseline_prob + 0.5
    assert result.mean_delta > 1.0
    # the other neurons write nothing, so clamping them changes nothing
    assert all(abs(d) < 1e-5 for d in result.random_delta)
    assert result.percentile == 1.0 and p.neuron not in result.random_neurons


def test_clamp_sets_the_activation_and_the_hook_is_removed(planted):
    model, p = planted
    name = "blocks.0.mlp.hook_post"
    with clamp(model, 0, p.neuron, 3.5):
        _, cache = model.run_with_cache(_tokens(), names_filter=[name])
    assert torch.all(cache[name][..., p.neuron] == 3.5)
    assert not model.hook_dict[name].fwd_hooks


def test_hooks_are_removed_on_error(planted):
    model, p = planted
    with pytest.raises(RuntimeError):
        with clamp(model, 0, p.neuron, 1.0):
            raise RuntimeError("boom")
    assert not model.hook_dict["blocks.0.mlp.hook_post"].fwd_hooks
    baseline = model(_tokens())
    with clamp(model, 0, p.neuron, 1.0):
        pass
    torch.testing.assert_close(model(_tokens()), baseline)


def test_bad_clamp_arguments(planted):
    model, _ = planted
    with pytest.raises(ValueError, match="neuron ids"):
        with clamp(model, 0, 99, 1.0):
            pass
    with pytest.raises(ValueError, match="target"):
        clamp_test(model, 0, 5, _tokens(), [])


def test_result_round_trip(tmp_path, planted):
    model, p = planted
    result = clamp_test(model, p.layer, p.neuron, _tokens(), [p.write_token], value=2.0, n_random=3)
    loaded = ClampResult.load(result.save(tmp_path / "clamp.json"))
    assert loaded == result
    saved = json.loads((tmp_path / "clamp.json").read_text())
    assert saved["mean_delta"] == result.mean_delta and saved["percentile"] == 1.0 and saved["kind"] == "ClampResult"
    assert "plotly" in result.to_html()
    paths = result.write(tmp_path / "out")
    assert sorted(path.name for path in paths.values()) == ["clamp.html", "clamp.json"]
    assert ClampResult.load(tmp_path / "out") == result
    assert result.summary().startswith(f"L{p.layer}N{p.neuron} clamped to 2")


@pytest.mark.parametrize(("settings", "message"), [
    ({"targets": 0}, "^--targets must be at least 1"), ({"n_prompts": 0}, "^--n-prompts must be at least 1"),
    ({"n_random": -1}, "^--n-random must be at least 0"), ({"ctx_len": 1}, "^--ctx-len must be at least 2"),
    ({"neuron": -1}, "^--neuron must be at least 0"), ({"layer": -2}, "^--layer must be at least 0"),
])
def test_clamp_config_errors_name_the_flag(settings, message):
    with pytest.raises(ConfigError, match=message):
        ClampConfig(**{"layer": 0, "neuron": 0, **settings})
