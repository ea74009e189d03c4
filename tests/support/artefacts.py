"""Tiny trained artefacts of the reference model, built once per session for the reliability tests.

As a pytest plugin (``tests/conftest.py`` lists it) it gives session fixtures, each built on
first use in a read-only-by-convention directory: ``tiny_run`` (a 2-layer TopK transcoder run),
``tiny_store`` (an activation store of layers 0-1), ``lying_store`` (its copy whose manifest
says a width its shards do not have), ``incomplete_store``, ``tiny_codebooks`` (a frozen-model
codebook run), ``other_model_dir`` (the reference model with other weights, same shape; loaded:
``other_model``), ``a_file`` and ``artefact_paths`` (all of them by the placeholder names
docs/errors.md uses), plus :func:`tree_digest` and :func:`edited_copy` for the tests.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest


def tree_digest(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (relative path -> digest): compare before and after."""
    out = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            out[str(file)] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def artefact_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artefacts")


@pytest.fixture(scope="session")
def tiny_run(artefact_root) -> Path:
    from interp.transcoders import TrainConfig, train

    out = artefact_root / "tc"
    train(TrainConfig(layers="0,1", tokens="2k", batch_size=256, expansion=2, out=str(out), device="cpu", progress=False))
    return out


@pytest.fixture(scope="session")
def tiny_store(artefact_root) -> Path:
    from interp.cache import CacheConfig, CacheRunConfig, run

    out = artefact_root / "store"
    run(CacheRunConfig(out=str(out), layers="0,1", ctx_len=32, cache=CacheConfig(n_tokens="1k", batch_size=8, progress=False)))
    return out


def edited_copy(store: Path, out: Path, edit) -> Path:
    """A copy of ``store`` at ``out`` whose manifest ``edit(manifest)`` changed in place."""
    shutil.copytree(store, out)
    manifest = json.loads((out / "manifest.json").read_text())
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="session")
def lying_store(tiny_store, artefact_root) -> Path:
    """The store with a manifest that doubles its first hook's width."""
    return edited_copy(tiny_store, artefact_root / "lying-store", lambda m: m["widths"].update({m["hook_names"][0]: 256}))


@pytest.fixture(scope="session")
def incomplete_store(tiny_store, artefact_root) -> Path:
    """The store with a manifest that says its run stopped early."""
    return edited_copy(tiny_store, artefact_root / "incomplete-store", lambda m: m.update(complete=False))


@pytest.fixture(scope="session")
def tiny_codebooks(artefact_root) -> Path:
    from interp.codebooks.training import CodebookTrainConfig, train

    out = artefact_root / "codebooks"
    train(CodebookTrainConfig(out=str(out), layers="0", steps=2, n_codes=16, k=2, batch_size=4, ctx_len=32, eval_batches=1,
                              freeze_model=True, kmeans_init=False, progress=False))
    return out


@pytest.fixture(scope="session")
def other_model_dir(artefact_root) -> Path:
    """The reference model's files with every weight changed a little: same shape, another model."""
    import torch
    from safetensors.torch import load_file, save_file

    from interp.reference.model import weights_dir

    out = artefact_root / "other-model"
    shutil.copytree(weights_dir(), out)
    state = load_file(str(out / "model.safetensors"))
    generator = torch.Generator().manual_seed(1)
    state = {k: v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(out / "model.safetensors"))
    return out


@pytest.fixture(scope="session")
def other_model(other_model_dir):
    """The reference model with other weights, loaded."""
    from interp.models import load_model

    return load_model(str(other_model_dir), device="cpu")


@pytest.fixture(scope="session")
def a_file(artefact_root) -> Path:
    path = artefact_root / "a-file.txt"
    path.write_text("not a directory\n")
    return path


@pytest.fixture(scope="session")
def artefact_paths(request) -> dict[str, Path]:
    """Placeholder name (as docs/errors.md writes it, ``{run}``) -> artefact, built on first use."""
    names = {"run": "tiny_run", "store": "tiny_store", "lying_store": "lying_store", "incomplete_store": "incomplete_store",
             "codebooks": "tiny_codebooks", "other": "other_model_dir", "file": "a_file"}

    class Lazy(dict):
        def __missing__(self, key: str) -> Path:
            value = request.getfixturevalue(names[key])
            self[key] = value
            return value

    return Lazy()
