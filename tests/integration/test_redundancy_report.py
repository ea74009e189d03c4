"""The whole redundancy analysis: result object, JSON round trip, HTML report and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interp.errors import ConfigError, StoreError
from interp.planted import noop_model
from interp.redundancy import DropCurve, Importance, Module, RedundancyConfig, RedundancyResult, analyze

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "redundancy_reference"

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def report():
    model = noop_model("attn", layer=1, mode="zero")
    tokens = torch.randint(0, 24, (8, 16), generator=torch.Generator().manual_seed(3))
    return analyze(
        model, tokens[:4], tokens[4:], strategies=("attn", "joint"), schedules=("one-shot", "iterative"), max_drop=2, batch_size=2,
        tasks=lambda m: {"first_logit": float(m(tokens[:1])[0, 0, 0])}, timing_tokens=tokens[:1], timing_repeats=1,
    )


def test_report_finds_the_planted_noop(report):
    assert report.most_redundant(k=1) == ["attn.1"]
    assert report.loss_increase(Module("attn", 1)) == pytest.approx(0.0, abs=1e-9)
    assert report.loss_increase(Module("block", 0)) > 1e-3
    assert set(report.rank_correlation) == {"attn", "mlp", "block", "joint"}
    assert len(report.curves) == 4 and all(len(c.points) == 3 for c in report.curves)
    for curve in report.curves:
        assert curve.points[0].loss == pytest.approx(report.baseline_loss)
        assert all(p.skip_max_abs_diff < 1e-6 for p in curve.points)
    assert report.curve("attn", "iterative").order[0] == "attn.1"
    assert report.curve("joint", "one-shot").order[0] == "attn.1"
    assert "attn.1" in report.summary()


def test_report_round_trips_through_json(report, tmp_path):
    paths = report.write(tmp_path)
    assert paths == {"json": tmp_path / "redundancy.json", "html": tmp_path / "redundancy.html"}
    path = paths["json"]
    loaded = RedundancyResult.load(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert json.loads(path.read_text())["kind"] == "RedundancyResult"
    assert isinstance(loaded.importance, Importance) and all(isinstance(c, DropCurve) for c in loaded.curves)
    assert loaded.curve("joint", "one-shot").points[1].dropped == report.curve("joint", "one-shot").points[1].dropped
    assert loaded.curve("attn", "iterative") == report.curve("attn", "iterative")
    assert loaded.importance == report.importance
    curve = report.curve("joint", "iterative")
    assert DropCurve.load(curve.save(tmp_path / "curve.json")) == curve
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    with pytest.raises(StoreError, match="schema"):
        RedundancyResult.from_dict(data)


def test_the_files_in_docs_still_load():
    """The reference results in docs/ were written before the result base (no ``kind``); they load unchanged."""
    raw = json.loads((REFERENCE / "redundancy.json").read_text())
    assert "kind" not in raw and raw["schema_version"] == 1
    result = RedundancyResult.load(REFERENCE / "redundancy.json")
    assert result.n_layers == 4 and len(result.curves) == 8
    assert result.curves[0].points[-1].loss == raw["curves"][0]["points"][-1]["loss"]
    assert result.importance.attn == raw["importance"]["attn"] and result.most_redundant(k=1) == ["attn.3"]
    # the files predate ``notes`` (what an architecture leaves undefined), which loads as empty
    expected = {**raw, "notes": [], "importance": {**raw["importance"], "notes": []}}
    assert {k: v for k, v in result.to_dict().items() if k != "kind"} == expected
    no_bos = Importance.load(REFERENCE / "no_bos_importance.json")
    assert not no_bos.include_bos and no_bos.n_tokens < result.importance.n_tokens


def test_old_names_still_work():
    import warnings

    from interp.redundancy import RedundancyReport

    assert RedundancyReport is RedundancyResult
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        from interp.redundancy import report as old
    assert old.RedundancyReport is RedundancyResult and old.analyze is analyze
    assert old.RedundancyConfig is RedundancyConfig


def test_html_is_self_contained(report):
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in page
    assert "<script src=\"http" not in page and "<script src='http" not in page
    assert page.count("Plotly.newPlot") == 5  # importance, single drop, loss, tasks, speed-up
    summary = report._repr_html_()  # the compact notebook block: headline numbers and a static chart, no script
    assert "<svg" in summary and "<script" not in summary and f"{report.baseline_loss:.4g}" in summary


def test_config_rejects_bad_choices_naming_the_flag():
    with pytest.raises(ConfigError, match="--strategies: unknown strategy 'heads'"):
        RedundancyConfig(strategies=["heads"])
    with pytest.raises(ConfigError, match="--schedules: unknown schedule 'greedy'"):
        RedundancyConfig(schedules=["greedy"])
    with pytest.raises(ConfigError, match="--n-heldout must be at least 1, got 0"):
        RedundancyConfig(n_heldout=0)
    with pytest.raises(ConfigError, match="--max-drop must be at least 1"):
        RedundancyConfig(max_drop=0)
    with pytest.raises(ConfigError, match="--ctx-len must be at least 2"):
        RedundancyConfig(ctx_len=1)
    with pytest.raises(ConfigError, match="--timing-batch"):
        RedundancyConfig(timing_batch=-1)
    assert not hasattr(RedundancyConfig(), "threads")  # the CLI's global --threads sets it; run() leaves torch alone


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    from interp.reference.model import architecture, build, save
    from interp.reference.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    path = tmp_path_factory.mktemp("redundancy") / "model"
    save(build(architecture(len(tokenizer)), tokenizer, seed=0), path)
    return path


def test_run_returns_the_result_and_touches_nothing_global(small_model_dir, tmp_path, monkeypatch):
    from interp.redundancy import run

    def refuse(*args):
        raise AssertionError("run() must not change torch's thread count")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    cfg = RedundancyConfig(model=str(small_model_dir), n_calibration=2, n_heldout=2, ctx_len=16, strategies=["mlp"],
                           schedules=["one-shot"], max_drop=1, tasks=False, timing_batch=0, device="cpu",
                           progress=False, out=str(tmp_path / "out"))
    result = run(cfg)
    assert isinstance(result, RedundancyResult) and [c.strategy for c in result.curves] == ["mlp"]
    assert result.settings["ctx_len"] == 16 and result.n_heldout_tokens == 2 * 15
    assert not (tmp_path / "out").exists()  # writing is the caller's: result.write(cfg.out)


@pytest.mark.slow
def test_cli_writes_json_and_html(small_model_dir, tmp_path, capsys):
    from interp.cli import main

    out = tmp_path / "out"
    code = main([
        "redundancy", "--model", str(small_model_dir), "--n-calibration", "2", "--n-heldout", "2",
        "--ctx-len", "16", "--strategies", "attn", "--schedules", "one-shot", "--tasks", "true",
        "--n-task-prompts", "4", "--timing-batch", "1", "--timing-repeats", "1", "--device", "cpu", "--threads", "1", "--out", str(out),
    ])
    assert code == 0
    report = RedundancyResult.load(out / "redundancy.json")
    assert [c.strategy for c in report.curves] == ["attn"] and len(report.curves[0].points) == 5
    assert set(report.baseline_tasks) >= {"facts_top1", "induction_repeat_acc"}
    # the task metrics are numbers by name, not a saved result's kind and schema_version
    assert "kind" not in report.baseline_tasks and all(isinstance(v, float) for v in report.baseline_tasks.values())
    assert all("kind" not in p.tasks for p in report.curves[0].points)
    assert (out / "redundancy.html").read_text().count("Plotly.newPlot") == 5
    printed = capsys.readouterr().out
    assert "baseline held-out loss" in printed and str(out / "redundancy.json") in printed
