"""Codebook training end to end on a random-init reference-shaped model: train, resume, CLI, code summary, search."""

from __future__ import annotations

import json

import pytest
import torch

from interp.codebooks.training import CodebookTrainConfig, CodebookTrainResult, load_trained, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from interp.reference.model import save_untrained

    return save_untrained(tmp_path_factory.mktemp("model"))


def _cfg(model_dir, out, **kw) -> CodebookTrainConfig:
    base = dict(
        out=str(out), model=str(model_dir), sites=["mlp_out"], layers="1", n_codes=16, k=1, ctx_len=32,
        batch_size=4, steps=6, eval_batches=1, checkpoint_every=3, kmeans_tokens="256", replace_dead_every=2,
        device="cpu",
    )
    return CodebookTrainConfig(**{**base, **kw})


def test_train_writes_codebooks_and_cost(model_dir, tmp_path):
    result = train(_cfg(model_dir, tmp_path / "run"))
    assert (tmp_path / "run" / "codebooks.safetensors").is_file()
    assert (tmp_path / "run" / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "run" / "train_result.json").read_text())
    assert saved["loss_codebooks"] == pytest.approx(result.loss_codebooks)
    assert saved["kind"] == "CodebookTrainResult" and saved["relative_cost"] == pytest.approx(result.relative_cost)
    assert CodebookTrainResult.load(tmp_path / "run") == result  # the directory finds train_result.json
    assert result.loss_original > 0 and result.relative_cost == pytest.approx(
        (result.loss_codebooks - result.loss_original) / result.loss_original
    )
    model, books = load_trained(tmp_path / "run", device="cpu")
    assert books.hooks == ["blocks.1.hook_mlp_out"]
    from interp.codebooks.training import lm_loss

    again, _ = lm_loss(model, [torch.randint(0, 400, (2, 16))], books)
    assert again > 0


def test_resume_continues_from_the_checkpoint(model_dir, tmp_path):
    out = tmp_path / "run"
    train(_cfg(model_dir, out, steps=3, freeze_model=True))
    step = torch.load(out / "checkpoint.pt", weights_only=False)["step"]
    assert step == 2
    assert not (out / "model.safetensors").exists()  # frozen: only codebooks are written
    result = train(_cfg(model_dir, out, steps=5, freeze_model=True, resume=True))
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 4
    assert result.steps == 5
    # a checkpoint written when layers was a list resumes under the same layers given as text
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    state["config"]["layers"] = [1]
    torch.save(state, out / "checkpoint.pt")
    assert train(_cfg(model_dir, out, steps=6, freeze_model=True, resume=True)).steps == 6
    from interp.errors import StoreError

    with pytest.raises(StoreError, match="different setup"):
        train(_cfg(model_dir, out, steps=7, n_codes=8, freeze_model=True, resume=True))
    with pytest.raises(StoreError, match="layers"):
        train(_cfg(model_dir, out, steps=7, layers="0-1", freeze_model=True, resume=True))


def test_frozen_training_leaves_the_model_untouched(model_dir, tmp_path):
    from interp.models import load_model

    before = load_model(str(model_dir), device="cpu").state_dict()
    train(_cfg(model_dir, tmp_path / "run", steps=3, freeze_model=True, sites=["z"]))
    model, books = load_trained(tmp_path / "run", device="cpu")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name])
    assert books["blocks.1.attn.hook_z"].cfg.n_groups == model.cfg.n_heads


def test_cli_train_search_report(model_dir, tmp_path, capsys):
    from interp.cli import main

    out = tmp_path / "run"
    args = ["codebook", "train", "--out", str(out), "--model", str(model_dir), "--layers", "0", "--n-codes", "8",
            "--ctx-len", "32", "--batch-size", "2", "--steps", "2", "--eval-batches", "1", "--kmeans-tokens", "1k",
            "--device", "cpu"]
    assert main(args) == 0
    assert "LM loss" in capsys.readouterr().out
    assert main(["codebook", "search", "--run", str(out), "--label", "fsm_state", "--n-contexts", "4",
                 "--out", str(tmp_path / "search")]) == 0
    assert "precision" in capsys.readouterr().out
    from interp.codebooks import CodeSearchConfig, CodeSearchResult, run_search

    found = CodeSearchResult.load(tmp_path / "search")
    again = run_search(CodeSearchConfig(run=str(out), label="fsm_state", n_contexts=4))
    assert found == again and found.n_positive > 0 and list(found.matches) == ["blocks.0.hook_mlp_out"]
    assert main(["codebook", "search", "--run", str(out), "--label", "fsm_state", "--n-contexts", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_positive"] == found.n_positive
    assert main(["codebook", "report", "--run", str(out), "--n-contexts", "4", "--top-codes", "3"]) == 0
    html = (out / "codes.html").read_text()
    assert "Plotly" in html and 'src="https://cdn' not in html  # plotly.js inlined, no CDN
    from interp.codebooks import CodebookReport, CodebookSummary

    summary = CodebookSummary.load(out)
    assert summary.sites[0].hook == "blocks.0.hook_mlp_out" and len(summary.sites[0].codes) <= 3
    assert summary.sites[0].codes[0].top_tokens and summary.sites[0].codes[0].top_contexts
    assert isinstance(summary.sites[0].codes[0].top_tokens[0], tuple)
    # a file written before the result base (no kind, no schema_version) still loads, under the old name too
    old = json.loads((out / "codes.json").read_text())
    del old["kind"], old["schema_version"]
    (tmp_path / "report.json").write_text(json.dumps(old))
    assert CodebookReport.load(tmp_path / "report.json") == summary
    with pytest.raises(SystemExit):  # no property, or two: refused while parsing
        main(["codebook", "search", "--run", str(out), "--label", "fsm_state", "--regex", "S"])
    assert "exactly one property" in capsys.readouterr().err


def test_generate_with_codes_forces_generation(model_dir):
    from interp.codebooks.insert import Codebooks, inserted
    from interp.codebooks.steer import generate_with_codes
    from interp.models import load_model

    model = load_model(str(model_dir), device="cpu")
    books = Codebooks.create(model, ["resid_post"], [3], n_codes=4, k=1)
    hook = "blocks.3.hook_resid_post"
    out = generate_with_codes(model, books, [0, 38, 457], {hook: [2]}, max_new_tokens=3)
    assert out.shape == (1, 6) and out[0, :3].tolist() == [0, 38, 457]
    with inserted(model, books, force={hook: [2]}) as run:
        model(out)
    assert torch.all(run.codes[hook] == 2)
    # resid_post at the last layer forced to one code everywhere: the logits no longer
    # depend on the input, so greedy decoding repeats one token
    assert len(set(out[0, 3:].tolist())) == 1


def test_report_and_search_read_contexts_as_long_as_training_did(model_dir, tmp_path):
    """record_run (codebook report and search) defaults to the run's training length, not the model's n_ctx."""
    from interp.codebooks.search import record_run
    from interp.errors import ConfigError

    train(_cfg(model_dir, tmp_path / "run", ctx_len=24, steps=2))
    _, books, contexts, record = record_run(tmp_path / "run", 3)
    assert books.trained_ctx_len == 24 and contexts.tokens.shape == (3, 24)
    assert next(iter(record.codes.values())).shape[:2] == (3, 24)
    assert record_run(tmp_path / "run", 2, ctx_len=40)[2].tokens.shape == (2, 40)
    with pytest.raises(ConfigError, match="--ctx-len 129 is longer than the model's context"):
        record_run(tmp_path / "run", 2, ctx_len=129)
