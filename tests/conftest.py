"""Shared fixtures: seeding, test tiers by directory, and the gpt2 marker.

Tiers: tests in tests/unit, tests/integration, tests/acceptance and tests/reliability are
marked ``unit``, ``integration``, ``acceptance`` and ``reliability``; select one with ``pytest -m unit``.
Tests marked ``gpt2`` need GPT-2 small's weights (a local Hugging Face cache or
``INTERP_GPT2_PATH``) and are skipped, with that reason, when the weights are absent; the
mechanics of each (everything but the published numbers) also run on every run against a
GPT-2-small-shaped checkpoint with random weights (``tests/support/gpt2_shaped.py``, a plugin
here: fixtures ``gpt2_shaped_dir``, ``gpt2_shaped_model`` and ``gpt2_like``).
Shapes annotated with jaxtyping are checked at run time (see pyproject's addopts).
Tiny checkpoints of every model family, and the fixtures and parametrisation helper of the
capability x architecture matrix, come from ``tests/support/families.py`` (a plugin here); tiny
trained artefacts of the reference model (a transcoder run, stores, codebooks, a model of the
same shape with other weights), from ``tests/support/artefacts.py``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

# Triton reads TRITON_INTERPRET when triton (and each kernel) is first imported, so it
# must be set before any test module imports it: here, before collection. CPU-only
# machines run the Triton kernels in its interpreter.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest_plugins = ["support.families", "support.gpt2_shaped", "support.artefacts"]

TIERS = ("unit", "integration", "acceptance", "reliability")


def pytest_collection_modifyitems(config, items):
    gpt2_ok = None
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
        if item.get_closest_marker("gpt2") is not None:  # not the keyword: a test id may be "gpt2"
            if gpt2_ok is None:
                from interp.models import gpt2_available

                gpt2_ok = gpt2_available()
            if not gpt2_ok:
                item.add_marker(
                    pytest.mark.skip(
                        reason="GPT-2 small weights are not on this machine: put them in the Hugging Face "
                        "cache (HF_HOME) or point INTERP_GPT2_PATH at a local checkpoint directory"
                    )
                )


@pytest.fixture(autouse=True)
def seed_everything():
    """Seed Python, NumPy and torch before every test."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    tiny models run far faster on one thread than on two oversubscribed ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference_model():
    """The bundled reference model (processed weights, CPU)."""
    from interp.models import load_model

    return load_model("reference", device="cpu")


@pytest.fixture(scope="session")
def gpt2_model():
    """GPT-2 small with its real weights (only tests marked ``gpt2`` may use it)."""
    from interp.models import load_model

    return load_model("gpt2", device="cpu")


@pytest.fixture
def exact_transcoder():
    """Factory ``make(model, layer=0)``: a ReLU transcoder whose weights are block ``layer``'s
    MLP, so it computes that MLP exactly when the model's MLPs are ReLU."""

    def make(model, layer: int = 0):
        from interp.transcoders import registry

        mlp, arch = model.blocks[layer].mlp, registry.get("relu")
        (d_in, d_sae), d_out = mlp.W_in.shape, mlp.W_out.shape[1]
        tc = arch.transcoder(arch.config(d_in=d_in, d_out=d_out, d_sae=d_sae))
        with torch.no_grad():
            tc.W_enc.copy_(mlp.W_in)
            tc.b_enc.copy_(mlp.b_in)
            tc.W_dec.copy_(mlp.W_out)
            tc.b_dec.copy_(mlp.b_out)
        return tc

    return make


@pytest.fixture
def planted_transcoder():
    """Factory ``make(name, d=8, d_sae=24, k=4, layer=0, x=None, y=None)``: a transcoder of
    architecture ``name`` with random weights, every parameter away from its initial value, and
    the normalisation of inputs ``x`` / outputs ``y`` (random ones with a mean and a scale when
    not given), so saving it has a normalisation to fold. It reads and writes layer ``layer``'s
    MLP hooks; TopK architectures keep ``k`` latents."""

    def make(name: str, d: int = 8, d_sae: int = 24, *, k: int = 4, layer: int = 0, x=None, y=None):
        from interp.transcoders import registry
        from interp.transcoders.data import layer_hooks

        arch = registry.get(name)
        tc = arch.transcoder(arch.config(d_in=d, d_out=d, d_sae=d_sae, **({"k": k} if arch.sparse_k else {})), seed=layer)
        g = torch.Generator().manual_seed(layer)
        x = 2 * torch.randn(512, d, generator=g) + 1 if x is None else x
        y = 3 * torch.randn(512, d, generator=g) - 1 if y is None else y
        tc.set_normalisation(x, y)
        with torch.no_grad():
            tc.b_enc.copy_(0.3 * torch.randn(d_sae, generator=g))
            tc.b_dec.copy_(0.5 * torch.randn(d, generator=g))
            if tc.has_skip:
                tc.W_skip.copy_(torch.randn(d, d, generator=g) / d**0.5)
            if hasattr(tc, "threshold"):
                tc.threshold.copy_(0.1 * torch.rand(d_sae, generator=g))
        tc.hook_name, tc.hook_name_out = layer_hooks(layer)
        return tc.eval()

    return make


@pytest.fixture
def interrupted(monkeypatch):
    """``interrupted(run, steps)``: call ``run()`` with the transcoder trainer stopping, as if
    killed, after ``steps`` steps (``Trainer.step`` raises KeyboardInterrupt), for resume tests."""
    from interp.transcoders.trainer import Trainer

    def run(fn, steps: int) -> None:
        real_step, calls = Trainer.step, {"n": 0}

        def step(self, batch):
            if calls["n"] == steps:
                raise KeyboardInterrupt
            calls["n"] += 1
            return real_step(self, batch)

        monkeypatch.setattr(Trainer, "step", step)
        with pytest.raises(KeyboardInterrupt):
            fn()
        monkeypatch.setattr(Trainer, "step", real_step)

    return run
