"""The default data source works with a tokenizer other than the reference one.

Every capability that reads text runs with its default ``data="reference"`` on a tiny
GPT-2-style checkpoint whose tokenizer is a byte-level BPE (no reference vocabulary): the
reference corpus is read as plain text. A run trained from a cache records the cache's data
source, and its evaluation reads that source.
"""

from __future__ import annotations

import json

import pytest

from interp.errors import DataError


@pytest.fixture(scope="module")
def model_dir(family_dirs) -> str:
    return str(family_dirs["gpt2"])


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    from interp.data import reference_texts

    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    texts = [text for _, text in zip(range(300), reference_texts(seed=9))]
    path.write_text("\n\n".join(texts), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def transcoder_run(model_dir, tmp_path_factory):
    from interp.transcoders import TrainConfig, train

    out = tmp_path_factory.mktemp("tc") / "run"
    train(TrainConfig(model=model_dir, layers="0,1", k=4, expansion=2, tokens="2k", batch_size=256, ctx_len=32,
                      out=str(out), device="cpu", progress=False, checkpoint_every=None))
    return out


def test_transcoder_train_streams_the_reference_text_and_records_it(transcoder_run):
    config = json.loads((transcoder_run / "run.json").read_text())["config"]
    assert config["data"] == "reference" and "dataset" not in config


def test_a_run_trained_from_a_cache_records_and_evaluates_the_cache_data(model_dir, text_file, tmp_path):
    from interp.cache import CacheConfig, CacheRunConfig
    from interp.cache import run as cache_run
    from interp.transcoders import EvalConfig, TrainConfig, evaluate, train

    store = cache_run(CacheRunConfig(out=str(tmp_path / "store"), model=model_dir, layers="0", data=str(text_file),
                                     ctx_len=32, device="cpu", cache=CacheConfig(batch_size=8, progress=False)))
    assert store.data == str(text_file) and store.manifest["source"] == {"data": str(text_file), "seed": 0}
    out = tmp_path / "tc"
    train(TrainConfig(model=model_dir, cache=str(tmp_path / "store"), layers="0", k=4, expansion=2, tokens="1k",
                      batch_size=128, ctx_len=32, out=str(out), device="cpu", progress=False, checkpoint_every=None))
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["data"] == str(text_file)
    assert json.loads((out / "layer_0" / "cfg.json").read_text())["metadata"]["dataset_path"] == str(text_file)
    # the evaluation reads the cache's text by default: asking for more than it holds names the file
    with pytest.raises(DataError, match=f"{text_file} gives only"):
        evaluate(str(out), EvalConfig(run=str(out), tokens="1M", device="cpu", progress=False))
    result = evaluate(str(out), EvalConfig(run=str(out), tokens="512", device="cpu", progress=False))
    assert result.n_tokens == 512


def test_transcoder_eval_of_a_run_without_recorded_data_asks_for_data(model_dir, tmp_path):
    from interp.cache import StreamingActivations
    from interp.data import load_contexts
    from interp.errors import ConfigError
    from interp.models import load_model
    from interp.transcoders import EvalConfig, TrainConfig, evaluate, train
    from interp.transcoders.data import required_hooks

    model = load_model(model_dir, device="cpu")
    tokens = load_contexts("reference", model.tokenizer, 32, 32)
    out = tmp_path / "tc"
    train(TrainConfig(model=model_dir, layers="0", k=4, expansion=2, tokens="1k", batch_size=128, ctx_len=16,
                      out=str(out), device="cpu", progress=False, checkpoint_every=None),
          model=model, source=StreamingActivations(model, required_hooks([0]), tokens))
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["data"] is None and config["ctx_len"] == 32  # what the activations had, not --ctx-len
    with pytest.raises(ConfigError, match="pass --data"):
        evaluate(str(out), EvalConfig(run=str(out), tokens="512", device="cpu", progress=False), model=model)
    assert evaluate(str(out), EvalConfig(run=str(out), tokens="512", data="reference", device="cpu", progress=False),
                    model=model).n_tokens == 512


def test_transcoder_eval_and_circuit_trace_on_the_reference_text(model_dir, transcoder_run):
    from interp.circuits import CircuitTraceConfig
    from interp.circuits import run as trace_run
    from interp.transcoders import EvalConfig, evaluate

    result = evaluate(str(transcoder_run), EvalConfig(run=str(transcoder_run), tokens="1k", device="cpu", progress=False))
    assert result.n_tokens == 1024 and [r.layer for r in result.layers] == [0, 1]
    graph = trace_run(CircuitTraceConfig(prompt="The red fox chased", model=model_dir, transcoders=str(transcoder_run),
                                         contexts=4))
    assert graph is not None


def test_sparsity_redundancy_and_neuron_clamp_on_the_reference_text(model_dir):
    from interp.neurons import ClampConfig
    from interp.neurons.clamping import run as clamp_run
    from interp.redundancy import RedundancyConfig
    from interp.redundancy import run as redundancy_run
    from interp.sparsity import SparsityConfig
    from interp.sparsity import run as sparsity_run

    sparsity = sparsity_run(SparsityConfig(model=model_dir, n_batches=2, batch_size=4, ctx_len=32, ks="8", progress=False))
    assert sparsity is not None
    redundancy = redundancy_run(RedundancyConfig(model=model_dir, ctx_len=32, n_calibration=4, n_heldout=4, batch_size=4,
                                                 strategies=["attn"], schedules=["one-shot"], max_drop=1, timing_batch=0,
                                                 device="cpu", progress=False))
    assert redundancy.settings["data"] == "reference"
    clamp = clamp_run(ClampConfig(layer=0, neuron=3, model=model_dir, n_random=2, n_prompts=4, ctx_len=32))
    assert clamp is not None


def test_codebook_train_report_and_search_on_the_reference_text(model_dir, tmp_path):
    from interp.codebooks import CodebookTrainConfig
    from interp.codebooks.search import CodeSearchConfig
    from interp.codebooks.search import run as search_run
    from interp.codebooks.summary import CodebookSummaryConfig
    from interp.codebooks.summary import run as summary_run
    from interp.codebooks.training import train

    out = str(tmp_path / "cb")
    train(CodebookTrainConfig(out=out, model=model_dir, layers="0", n_codes=8, steps=3, batch_size=2, ctx_len=32,
                              eval_batches=1, kmeans_tokens="256", checkpoint_every=10, device="cpu", progress=False))
    summary = summary_run(CodebookSummaryConfig(run=out, n_contexts=4, top_codes=3))
    assert summary.n_positions == 4 * 32  # contexts as long as training read (--ctx-len 32), not n_ctx 64
    by_label = search_run(CodeSearchConfig(run=out, label="year", n_contexts=4))
    by_regex = search_run(CodeSearchConfig(run=out, regex=r"\d$", n_contexts=4))
    assert by_label.n_positive > 0 and by_regex.n_positive > 0


def test_units_on_the_reference_text(model_dir):
    from interp.units import UnitsRunConfig
    from interp.units import run as units_run

    result = units_run(UnitsRunConfig(model=model_dir, layers="0", n_contexts=4, ctx_len=32, device="cpu"))
    assert result.metadata["classes"] == "token identity"
