"""Circuit configs nest instead of copying fields, and refuse bad settings naming the flag."""

from __future__ import annotations

import dataclasses

import pytest

from interp.circuits import AttributionConfig, CircuitTraceConfig, TraceConfig
from interp.errors import ConfigError


def test_attribution_config_holds_only_what_attribute_reads():
    assert [f.name for f in dataclasses.fields(AttributionConfig)] == ["batch_size", "progress", "threads"]


def test_trace_config_holds_an_attribution_config_and_the_cli_config_a_trace_config():
    names = [f.name for f in dataclasses.fields(TraceConfig)]
    assert "attribution" in names and "batch_size" not in names and "progress" not in names
    assert TraceConfig().attribution == AttributionConfig()
    cli = [f.name for f in dataclasses.fields(CircuitTraceConfig)]
    assert "trace" in cli and not {"node_threshold", "edge_threshold", "batch_size", "heads"} & set(cli)
    assert CircuitTraceConfig(prompt="x").trace == TraceConfig()


def test_default_targets_are_circuit_tracers_and_n_top_logits_still_works():
    cfg = TraceConfig()
    assert (cfg.max_n_logits, cfg.desired_logit_prob) == (10, 0.95)
    with pytest.warns(DeprecationWarning, match=r"max_n_logits=3, desired_logit_prob=1\.0"):
        old = TraceConfig(n_top_logits=3)
    assert (old.max_n_logits, old.desired_logit_prob) == (3, 1.0)


def test_the_flat_keywords_still_work_and_warn():
    with pytest.warns(DeprecationWarning, match="attribution=AttributionConfig"):
        cfg = TraceConfig(batch_size=8, progress=False, node_threshold=0.5)
    assert cfg.attribution == AttributionConfig(batch_size=8, progress=False) and cfg.node_threshold == 0.5
    # replace() keeps the nested settings and does not warn again
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = dataclasses.replace(cfg, edge_threshold=0.7)
    assert again.attribution == cfg.attribution and again.edge_threshold == 0.7


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TraceConfig(node_threshold=1.5), "--node-threshold must be in [0, 1], got 1.5"),
        (lambda: TraceConfig(edge_threshold=-0.1), "--edge-threshold must be in [0, 1], got -0.1"),
        (lambda: TraceConfig(min_head_fraction=2.0), "--min-head-fraction must be in [0, 1], got 2.0"),
        (lambda: TraceConfig(max_n_logits=0), "--max-n-logits must be at least 1, got 0"),
        (lambda: TraceConfig(desired_logit_prob=1.5), "--desired-logit-prob must be in [0, 1], got 1.5"),
        (lambda: TraceConfig(n_top_logits=0), "n_top_logits must be at least 1, got 0"),
        (lambda: AttributionConfig(batch_size=0), "--batch-size must be at least 1, got 0"),
        (lambda: CircuitTraceConfig(prompt="x", contexts=-1), "--contexts must be at least 0, got -1"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_flag(make, message):
    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)
