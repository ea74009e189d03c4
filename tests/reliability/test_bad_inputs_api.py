"""Bad input through the Python API: each refused with its interp.errors kind and one sentence
naming what was wrong, with no existing file changed (issue 18)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from support.artefacts import edited_copy, tree_digest

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def model(reference_model):
    return reference_model


@pytest.fixture(scope="module")
def run_tcs(tiny_run):
    from interp.transcoders import load_run

    return load_run(tiny_run)


@pytest.fixture
def unchanged(artefact_paths):
    """Asserts after the test that no artefact built so far changed."""
    watched = [p for p in artefact_paths.values() if Path(p).exists()]
    before = tree_digest(*watched)
    yield
    assert tree_digest(*watched) == before, "a refused call changed an existing file"


def _one_sentence(err: BaseException, *fragments: str) -> None:
    text = str(err)
    assert "\n" not in text.strip() and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text


PROMPTS = [
    ("", "the prompt is empty"),
    ("the " * 200, "202 tokens long but the model reads at most 128"),
    ([1, 2, 9999], "token id 9999, outside the model's vocabulary (ids 0..458)"),
    ([-1, 2], "token id -1, outside the model's vocabulary"),
    (torch.zeros(0, dtype=torch.long), "the prompt is empty"),
    (torch.tensor([1.0, 2.0]), "must be integer token ids"),
]


@pytest.mark.parametrize(("prompt", "fragment"), PROMPTS, ids=["empty", "too-long", "id-too-large", "negative-id", "no-ids", "floats"])
def test_trace_refuses_bad_prompts(prompt, fragment, model, run_tcs, unchanged):
    from interp.circuits import trace
    from interp.errors import TargetError

    with pytest.raises(TargetError) as caught:
        trace(model, run_tcs, prompt)
    _one_sentence(caught.value, fragment)


def test_attribute_refuses_a_prompt_longer_than_the_context(model, run_tcs):
    from interp.circuits.attribution import attribute, token_target
    from interp.errors import TargetError

    with pytest.raises(TargetError, match="tokens long but the model reads at most 128"):
        attribute(model, run_tcs, torch.ones(129, dtype=torch.long), [token_target(model, 3)])


def _transcoder(planted_transcoder, d: int, layer: int):
    return planted_transcoder("relu", d=d, d_sae=2 * d, layer=layer)


WRONG = [
    ({2: "layer-0"}, "the transcoder given for layer 2 was trained on 'blocks.0.ln2.hook_normalized'"),
    ({0: "width-8"}, "maps 8 -> 8 dims but the model's MLP reads and writes d_model=128"),
    ({7: "layer-0"}, "transcoder layer 7 is not a layer of this 4-layer model"),
    ({}, "no transcoders given"),
    ({0: "not-a-transcoder"}, "is not a transcoder interp can use"),
]


@pytest.mark.parametrize(("given", "fragment"), WRONG, ids=["wrong-layer", "wrong-width", "layer-out-of-range", "none", "not-a-transcoder"])
def test_for_model_refuses_transcoders_that_do_not_fit(given, fragment, model, run_tcs, planted_transcoder):
    from interp.errors import TranscoderLoadError
    from interp.transcoders import for_model

    objects = {"layer-0": run_tcs[0], "width-8": _transcoder(planted_transcoder, 8, 0), "not-a-transcoder": object()}
    with pytest.raises(TranscoderLoadError) as caught:
        for_model(model, {layer: objects[name] for layer, name in given.items()})
    _one_sentence(caught.value, fragment)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_topk_activation_never_selects_nan_or_inf(bad):
    from interp.errors import KernelInputError
    from interp.kernels import topk_activation

    pre = torch.randn(4, 16)
    pre[2, 5] = bad
    with pytest.raises(KernelInputError) as caught:
        topk_activation(pre, 3, backend="torch")
    _one_sentence(caught.value, "1 NaN or +inf values (first in row 2)")


def test_topk_activation_takes_minus_inf_masks():
    from interp.kernels import topk_activation

    pre = torch.randn(3, 8)
    pre[:, :4] = float("-inf")
    _, indices = topk_activation(pre, 2, backend="torch")
    assert bool((indices >= 4).all())


def test_trainer_blames_the_activations_not_the_learning_rate(planted_transcoder):
    from interp.errors import DataError
    from interp.transcoders import OptimConfig, Trainer

    tc = planted_transcoder("topk", d=8, d_sae=16, k=2)
    trainer = Trainer({"layer_0": tc}, OptimConfig(), total_steps=4, tokens_per_step=32)
    x, y = torch.randn(32, 8), torch.randn(32, 8)
    x[3, 1] = float("nan")
    with pytest.raises(DataError) as caught:
        trainer.step({"layer_0": (x, y)})
    _one_sentence(caught.value, "layer_0: the activations (inputs)", "1 NaN or inf values of 256", "which no learning rate fixes")
    assert "--lr" not in str(caught.value) and "_" not in str(caught.value).split("layer_0")[1]


def test_trainer_takes_large_finite_activations_whose_sum_overflows(planted_transcoder):
    """The trainer's finiteness check sums the batch first; a sum that overflows is checked entry by
    entry, so finite activations are never blamed (here the loss overflows instead: divergence)."""
    from interp.errors import DataError, TrainingDivergedError
    from interp.transcoders import OptimConfig, Trainer

    tc = planted_transcoder("topk", d=8, d_sae=16, k=2)
    trainer = Trainer({"layer_0": tc}, OptimConfig(), total_steps=4, tokens_per_step=32)
    x, y = torch.randn(32, 8), torch.randn(32, 8)
    y[:4] = 3e38  # finite, but their sum is inf in float32
    assert not torch.isfinite(y.sum())
    with pytest.raises(TrainingDivergedError, match="layer_0: loss is"):
        trainer.step({"layer_0": (x, y)})
    y[:4] = float("inf")
    with pytest.raises(DataError, match="32 NaN or inf values of 256"):
        trainer.step({"layer_0": (x, y)})


def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from interp.errors import StoreError
    from interp.transcoders import TrainConfig, train, training

    real_save = training.save_checkpoint
    saved: list[dict] = []

    def save(path, *args, **kwargs):
        if saved:  # the second checkpoint finds the disk full
            def full(handle, data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(training._Sink, "_write", staticmethod(full))
        real_save(path, *args, **kwargs)
        saved.append(tree_digest(path))

    monkeypatch.setattr(training, "save_checkpoint", save)
    out = tmp_path / "run"
    cfg = TrainConfig(layers="0", tokens="3k", batch_size=256, expansion=2, out=str(out), device="cpu", progress=False, checkpoint_every=4)
    with pytest.raises(StoreError) as caught:
        train(cfg)
    checkpoint = out / "checkpoint" / "state.pt"
    _one_sentence(caught.value, f"the disk is full: writing to {out} failed", f"the last good checkpoint, {checkpoint}, is kept",
                  "--resume true")
    assert tree_digest(checkpoint) == saved[0]  # the first checkpoint, intact
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["state.pt"]  # no temporary file left
    torch.load(checkpoint, weights_only=False)


def _bad_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


DATA = [
    ("empty.txt", b"", "holds no text"),
    ("blank.jsonl", b"\n\n", "holds no text"),
    ("latin1.txt", "caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    ("body.jsonl", b'{"body": "x"}\n', "has no field 'text' (fields: ['body'])"),
    ("number.jsonl", b'{"text": 3}\n', "field 'text' is not a string"),
    ("broken.jsonl", b'{"text": "x"\n', "is not valid JSON"),
    ("list.jsonl", b'[1, 2]\n', "is not a JSON object but a JSON list"),
    ("table.csv", b"a,b\n", "unsupported file type '.csv'"),
]


@pytest.mark.parametrize(("name", "content", "fragment"), DATA, ids=[d[0] for d in DATA])
def test_bad_data_files(name, content, fragment, tmp_path, model):
    from interp.data import load_contexts
    from interp.errors import DataError

    path = _bad_file(tmp_path, name, content)
    with pytest.raises(DataError) as caught:
        load_contexts(str(path), model.tokenizer, 2, 16)
    _one_sentence(caught.value, fragment)


@pytest.mark.parametrize("source", ["missing.txt", "no/such/folder/file", "sub/missing"])
def test_a_missing_local_file_is_not_looked_up_on_the_hub(source, tmp_path, model, monkeypatch):
    from interp.data import load_contexts
    from interp.errors import DataError

    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        load_contexts(source, model.tokenizer, 2, 16)
    _one_sentence(caught.value, f"no such data file: {source}")
    assert "Hub" not in str(caught.value)


LIES = {
    "width": (lambda m: m["widths"].update({m["hook_names"][1]: 64}), "as F32 [992, 128], but the manifest says F32 [992, 64]"),
    "dtype": (lambda m: m.update(dtype="bfloat16"), "but the manifest says BF16"),
    "rows": (lambda m: m["shards"][0].update(n_contexts=m["shards"][0]["n_contexts"] - 1), "but the manifest says"),
    "context length": (lambda m: m.update(ctx_len=16), "but the manifest says"),
}


@pytest.mark.parametrize("verify", ["sizes", "full"])
@pytest.mark.parametrize("lie", list(LIES))
def test_a_manifest_that_lies_about_its_shards_is_refused(lie, verify, tiny_store, tmp_path):
    from interp.cache import ActivationStore
    from interp.errors import StoreError

    edit, fragment = LIES[lie]
    store = edited_copy(tiny_store, tmp_path / "edited", edit)
    with pytest.raises(StoreError) as caught:
        ActivationStore.open(store, verify=verify)
    _one_sentence(caught.value, "the manifest does not describe its shards", fragment)


CONFIGS = [
    ("interp.transcoders:EvalConfig", {"run": "r", "tokens": "0"}, "--tokens must be at least 1"),
    ("interp.transcoders:EvalConfig", {"run": "r", "batch_size": 0}, "--batch-size must be at least 1"),
    ("interp.transcoders:TrainConfig", {"ctx_len": 0}, "--ctx-len must be at least 1"),
    ("interp.transcoders:OptimConfig", {"lr": float("nan")}, "--lr must be a positive number"),
    ("interp.transcoders:OptimConfig", {"adam_beta2": 1.0}, "--adam-beta2 must be in [0, 1)"),
    ("interp.codebooks.search:CodeSearchConfig", {"run": "r", "regex": "[a"}, "--regex '[a' is not a valid regular expression"),
]


@pytest.mark.parametrize(("where", "kwargs", "fragment"), CONFIGS, ids=[f"{w.split(':')[1]}-{next(iter(k.items()))[0]}" for w, k, _ in CONFIGS])
def test_configs_refuse_bad_settings(where, kwargs, fragment):
    import importlib

    from interp.errors import ConfigError

    module, name = where.split(":")
    with pytest.raises(ConfigError) as caught:
        getattr(importlib.import_module(module), name)(**kwargs)
    _one_sentence(caught.value, fragment)


def test_check_context_names_the_flag(model):
    from interp.errors import ConfigError
    from interp.models import check_context

    check_context(model, 128)
    with pytest.raises(ConfigError, match=r"--n-ctx 129 is longer than the model's context \(n_ctx=128\); pass at most 128"):
        check_context(model, 129, flag="--n-ctx")


def test_weights_that_became_nan_are_divergence_not_a_kernel_error(planted_transcoder):
    from interp.errors import TrainingDivergedError
    from interp.transcoders import OptimConfig, Trainer

    tc = planted_transcoder("topk", d=8, d_sae=16, k=2)
    trainer = Trainer({"layer_0": tc}, OptimConfig(), total_steps=4, tokens_per_step=32)
    trainer.step({"layer_0": (torch.randn(32, 8), torch.randn(32, 8))})
    trainer.since_fired["layer_0"].fill_(10**9)  # every latent dead: the AuxK loss runs the top-k kernel on them
    with torch.no_grad():
        tc.W_enc[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="layer_0: a weight is NaN or inf at step 1"):
        trainer.step({"layer_0": (torch.randn(32, 8), torch.randn(32, 8))})


def test_a_clt_whose_weights_became_nan_diverges():
    from interp.errors import TrainingDivergedError
    from interp.transcoders import OptimConfig, Trainer, registry

    arch = registry.get("clt")
    clt = arch.transcoder(arch.config(d_in=8, d_out=8, d_sae=16, n_layers=2, activation="topk", k=2), seed=0)
    x, y = torch.randn(32, 2, 8), torch.randn(32, 2, 8)
    trainer = Trainer({"clt": clt}, OptimConfig(), total_steps=4, tokens_per_step=32)
    trainer.step({"clt": (x, y)})
    with torch.no_grad():
        clt.W_enc[0, 0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="clt: (a weight is NaN or inf|loss is nan) at step 1"):
        trainer.step({"clt": (x, y)})
