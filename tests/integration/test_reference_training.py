"""Reference training is reproducible from its seed, and its files load back identically."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from interp.reference.train import ReferenceTrainConfig, train


def _short(out, seed=0):
    return ReferenceTrainConfig(out=str(out), seed=seed, steps=3, batch_size=4, ctx_len=32, warmup_steps=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):

    root = tmp_path_factory.mktemp("ref")
    results = {name: train(_short(root / name, seed)) for name, seed in (("a", 0), ("b", 0), ("c", 1))}
    return root, results


def test_same_seed_gives_bit_identical_weights(runs):
    root, _ = runs
    a = load_file(str(root / "a" / "model.safetensors"))
    b = load_file(str(root / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_other_seed_gives_other_weights(runs):
    root, _ = runs
    a = load_file(str(root / "a" / "model.safetensors"))
    c = load_file(str(root / "c" / "model.safetensors"))
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_run_writes_a_loadable_model_and_a_log(runs):
    from interp.models import load_model

    root, results = runs
    log = json.loads((root / "a" / "train_log.json").read_text())
    assert log["config"]["steps"] == 3 and set(log["result"]["metrics"]) == set(results["a"].metrics)
    model = load_model(root / "a", device="cpu")
    unprocessed = load_model(root / "a", device="cpu", fold_ln=False, center_writing_weights=False, center_unembed=False)
    tokens = model.to_tokens("The war lasted from the year 1732 to the year 17")
    with torch.no_grad():
        a, b = model(tokens), unprocessed(tokens)
    assert torch.allclose(a.log_softmax(-1), b.log_softmax(-1), atol=1e-4)


def test_bad_config_is_rejected_with_the_reason():
    with pytest.raises(ValueError, match="ctx.len"):
        ReferenceTrainConfig(ctx_len=256)
    with pytest.raises(ValueError, match="steps"):
        ReferenceTrainConfig(steps=0)
