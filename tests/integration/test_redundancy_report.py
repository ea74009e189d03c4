"""The whole redundancy analysis: result object, JSON round trip, HTML report and CLI."""

from __future__ import annotations

import json

import pytest
import torch

from interp.planted import noop_model
from interp.redundancy import Module
from interp.redundancy.report import RedundancyConfig, RedundancyReport, analyze

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run far faster on one thread than on two oversubscribed ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



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
    path = report.save(tmp_path / "r.json")
    loaded = RedundancyReport.load(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert loaded.curve("joint", "one-shot").points[1].dropped == report.curve("joint", "one-shot").points[1].dropped
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    with pytest.raises(ValueError, match="schema"):
        RedundancyReport.from_dict(data)


def test_html_is_self_contained(report):
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in page
    assert "<script src=\"http" not in page and "<script src='http" not in page
    assert page.count("Plotly.newPlot") == 5  # importance, single drop, loss, tasks, speed-up
    summary = report._repr_html_()  # the compact notebook block: headline numbers and a static chart, no script
    assert "<svg" in summary and "<script" not in summary and f"{report.baseline_loss:.4g}" in summary


def test_config_rejects_bad_choices():
    with pytest.raises(ValueError, match="strategy"):
        RedundancyConfig(strategies=["heads"])
    with pytest.raises(ValueError, match="schedule"):
        RedundancyConfig(schedules=["greedy"])
    with pytest.raises(ValueError, match="n_heldout"):
        RedundancyConfig(n_heldout=0)


@pytest.mark.slow
def test_cli_writes_json_and_html(tmp_path, capsys):
    from interp.cli import main
    from interp.reference.model import architecture, build, save
    from interp.reference.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    save(build(architecture(len(tokenizer)), tokenizer, seed=0), tmp_path / "model")
    out = tmp_path / "out"
    code = main([
        "redundancy", "--model", str(tmp_path / "model"), "--n-calibration", "2", "--n-heldout", "2",
        "--ctx-len", "16", "--strategies", "attn", "--schedules", "one-shot", "--tasks", "true",
        "--n-task-prompts", "4", "--timing-batch", "1", "--timing-repeats", "1", "--device", "cpu", "--threads", "1", "--out", str(out),
    ])
    assert code == 0
    report = RedundancyReport.load(out / "redundancy.json")
    assert [c.strategy for c in report.curves] == ["attn"] and len(report.curves[0].points) == 5
    assert set(report.baseline_tasks) >= {"facts_top1", "induction_repeat_acc"}
    assert (out / "redundancy.html").read_text().count("Plotly.newPlot") == 5
    assert "wrote" in capsys.readouterr().out
