"""Fingerprints: every trained artefact records the model it was trained on, and using it on
another model is refused unless forced, which the output records (issue 18)."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def model(reference_model):
    return reference_model


def test_fingerprint_describes_the_model_and_changes_with_any_weights(model, other_model):
    from interp.models import fingerprint

    fp = fingerprint(model)
    assert fp == fingerprint(model)
    assert {k: fp[k] for k in ("n_layers", "d_model", "d_mlp", "d_vocab", "n_ctx")} == {
        "n_layers": 4, "d_model": 128, "d_mlp": 512, "d_vocab": 459, "n_ctx": 128}
    assert fp["architecture"] == model.cfg.original_architecture and fp["normalization"] == model.cfg.normalization_type
    assert len(fp["weights"]) == 16
    theirs = fingerprint(other_model)
    assert {k: v for k, v in theirs.items() if k != "weights"} == {k: v for k, v in fp.items() if k != "weights"}
    assert theirs["weights"] != fp["weights"]  # same shape, other weights: told apart


def test_fingerprint_survives_a_cast_but_not_a_change_of_one_tensor(model):
    import copy

    from interp.models import fingerprint

    fp = fingerprint(model)
    half = copy.deepcopy(model).to(torch.bfloat16)
    assert fingerprint(half)["weights"] == fp["weights"]
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        nudged.blocks[3].mlp.b_out.add_(0.05)
    assert fingerprint(nudged)["weights"] != fp["weights"]


def test_every_file_of_a_transcoder_run_records_it(tiny_run, model, tmp_path):
    from interp.models import fingerprint
    from interp.transcoders import ExportConfig, export, load_run

    fp = fingerprint(model)
    assert json.loads((tiny_run / "run.json").read_text())["model_fingerprint"] == fp
    for layer in (0, 1):
        assert json.loads((tiny_run / f"layer_{layer}" / "cfg.json").read_text())["metadata"]["model_fingerprint"] == fp
    assert all(tc.model_fingerprint == fp for tc in load_run(tiny_run).values())
    export(ExportConfig(run=str(tiny_run), format="saelens", out=str(tmp_path / "saelens")))  # an export keeps it
    assert all(tc.model_fingerprint == fp for tc in load_run(tmp_path / "saelens").values())


def test_a_store_and_codebooks_record_it(tiny_store, tiny_codebooks, model):
    from interp.models import fingerprint

    fp = fingerprint(model)
    assert json.loads((tiny_store / "manifest.json").read_text())["model"] == fp
    assert json.loads((tiny_codebooks / "codebooks.json").read_text())["model_fingerprint"] == fp


def test_transcoders_of_another_model_are_refused_then_forced_and_recorded(tiny_run, model, other_model, tmp_path):
    from interp.circuits import Graph, TraceConfig, trace
    from interp.errors import TranscoderLoadError
    from interp.models import fingerprint
    from interp.transcoders import for_model, load_run

    with pytest.raises(TranscoderLoadError) as caught:
        for_model(other_model, load_run(tiny_run))
    message = str(caught.value)
    assert fingerprint(model)["weights"] in message and fingerprint(other_model)["weights"] in message and "--force true" in message
    with pytest.raises(TranscoderLoadError, match="were trained on"):
        trace(other_model, load_run(tiny_run), "The cat", cfg=TraceConfig(heads=False))

    graph = trace(other_model, load_run(tiny_run), "The cat", cfg=TraceConfig(heads=True), force=True)
    forced = graph.transcoders_forced
    assert forced["forced"] and forced["trained_on"] == fingerprint(model) and forced["used_on"] == fingerprint(other_model)
    paths = graph.write(tmp_path)
    assert json.loads(paths["json"].read_text())["interp"]["transcoders_forced"] == forced
    assert Graph.load(tmp_path / "graph.pt").transcoders_forced == forced
    assert trace(model, load_run(tiny_run), "The cat", cfg=TraceConfig(heads=False)).transcoders_forced is None


def test_eval_refuses_then_records_a_forced_model(tiny_run, other_model_dir, tmp_path):
    from interp.errors import TranscoderLoadError
    from interp.transcoders import EvalConfig, evaluate

    cfg = dict(run=str(tiny_run), model=str(other_model_dir), tokens="256", ctx_len=32, batch_size=8, n_features=2, n_contexts=1,
               device="cpu", progress=False)
    with pytest.raises(TranscoderLoadError, match="were trained on"):
        evaluate(tiny_run, EvalConfig(**cfg))
    result = evaluate(tiny_run, EvalConfig(**cfg, force=True))
    assert result.transcoders_forced["forced"]
    saved = json.loads(result.save(tmp_path / "eval.json").read_text())
    assert saved["transcoders_forced"]["used_on"]["weights"] == result.transcoders_forced["used_on"]["weights"]


def test_files_from_before_fingerprints_load_with_a_warning(tiny_run, model, tmp_path, caplog):
    from interp.transcoders import for_model, load_run

    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    for cfg_file in old.glob("layer_*/cfg.json"):
        cfg = json.loads(cfg_file.read_text())
        del cfg["metadata"]["model_fingerprint"]
        cfg_file.write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING, logger="interp.models.fingerprint"):
        assert sorted(for_model(model, load_run(old))) == [0, 1]
    assert "record no model fingerprint" in caplog.text


def test_codebooks_of_another_model_are_refused_unless_forced(tiny_codebooks, tmp_path):
    from interp.codebooks.search import CodeSearchConfig
    from interp.codebooks.search import run as search
    from interp.codebooks.training import load_trained
    from interp.errors import StoreError

    run = tmp_path / "codebooks"
    shutil.copytree(tiny_codebooks, run)
    meta = json.loads((run / "codebooks.json").read_text())
    meta["model_fingerprint"]["weights"] = "0" * 16  # the model under that name is not the one they were trained on
    (run / "codebooks.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="the codebooks in .* were trained on"):
        load_trained(run)
    _, books = load_trained(run, force=True)
    assert len(books.hooks) == 1 and books.forced["trained_on"] == meta["model_fingerprint"]
    with pytest.raises(StoreError, match="were trained on"):
        search(CodeSearchConfig(run=str(run), regex="a", n_contexts=2))
    found = search(CodeSearchConfig(run=str(run), regex="a", n_contexts=2, force=True))
    assert found.codebooks_forced["used_on"]["weights"] != "0" * 16


def test_a_cross_layer_transcoder_records_and_checks_it(tmp_path, model, other_model):
    from interp.errors import TranscoderLoadError
    from interp.models import fingerprint
    from interp.transcoders import TrainConfig, for_model, load_run, train

    out = tmp_path / "clt"
    train(TrainConfig(arch="clt", layers="0,1", tokens="512", batch_size=256, expansion=1, out=str(out), device="cpu", progress=False))
    clt = load_run(out)
    assert clt.model_fingerprint == fingerprint(model)
    for_model(model, clt, cross_layer=True)
    with pytest.raises(TranscoderLoadError, match="were trained on"):
        for_model(other_model, clt, cross_layer=True)
