"""The on-disk store: resume after a failure, a full disk, checksums, dtypes, the stopped forward."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from interp.cache import ActivationStore, CacheConfig, cache_activations
from interp.cache import writer as writer_module
from interp.cache.store import MANIFEST, shard_file
from interp.errors import StoreError, UnknownHookError
from interp.hooks import hook_name
from interp.io import atomic_write

CTX = 8
HOOKS = [hook_name("ln2_normalized", 0), hook_name("mlp_out", 0), hook_name("ln2_normalized", 1), hook_name("mlp_out", 1)]


def tiny_model(n_layers: int = 3, seed: int = 0):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=16, d_mlp=32, n_heads=2, d_head=8, d_vocab=50, n_ctx=16,
        act_fn="gelu_new", normalization_type="LN", seed=seed, device="cpu",
    )
    return HookedTransformer(cfg).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 50, (40, CTX), generator=torch.Generator().manual_seed(2))


def config(**overrides) -> CacheConfig:
    # One forward batch of 4 contexts per shard: 10 shards for 40 contexts.
    return CacheConfig(**{"batch_size": 4, "shard_mb": 1e-4, "progress": False, **overrides})


def assert_same_store(a: ActivationStore, b: ActivationStore) -> None:
    assert [(s.file, s.bytes, s.checksum, s.n_contexts) for s in a.shards] == [
        (s.file, s.bytes, s.checksum, s.n_contexts) for s in b.shards
    ]
    rows_a, rows_b = a.read_all(), b.read_all()
    assert torch.equal(rows_a.tokens, rows_b.tokens)
    for name in a.hook_names:
        assert torch.equal(rows_a.acts[name], rows_b.acts[name])


@pytest.fixture(scope="module")
def uninterrupted(model, tokens, tmp_path_factory):
    return cache_activations(model, HOOKS, tokens, tmp_path_factory.mktemp("full") / "store", config())


def test_failure_after_shard_k_then_resume_equals_uninterrupted(model, tokens, tmp_path, monkeypatch, uninterrupted):
    real = writer_module.write_shard
    calls = []

    def failing(path, tensors, metadata):
        calls.append(path.name)
        if len(calls) == 4:
            raise RuntimeError("injected failure while writing shard 3")
        return real(path, tensors, metadata)

    monkeypatch.setattr(writer_module, "write_shard", failing)
    out = tmp_path / "store"
    with pytest.raises(RuntimeError, match="injected"):
        cache_activations(model, HOOKS, tokens, out, config())
    monkeypatch.setattr(writer_module, "write_shard", real)
    with pytest.raises(StoreError, match="incomplete"):
        ActivationStore.open(out)
    partial = ActivationStore.open(out, allow_incomplete=True)
    assert len(partial.shards) == 3 and len(partial) == 3 * 4 * CTX
    with pytest.raises(StoreError, match="--resume"):
        cache_activations(model, HOOKS, tokens, out, config())
    (out / ".shard-00003.safetensors.stale.tmp").write_bytes(b"left by a kill")
    resumed = cache_activations(model, HOOKS, tokens, out, config(resume=True))
    assert not list(out.glob(".*.tmp"))
    assert_same_store(resumed, uninterrupted)


def test_full_disk_is_a_clear_error_and_leaves_the_store_intact(model, tokens, tmp_path, monkeypatch, uninterrupted):
    real = writer_module.write_shard
    calls = []

    def disk_fills(path, tensors, metadata):
        calls.append(path.name)
        if len(calls) == 3:
            with atomic_write(path) as tmp:
                tmp.write_bytes(b"half a shard")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, tensors, metadata)

    monkeypatch.setattr(writer_module, "write_shard", disk_fills)
    out = tmp_path / "store"
    with pytest.raises(StoreError) as info:
        cache_activations(model, HOOKS, tokens, out, config())
    message = str(info.value)
    assert "disk is full" in message and "2 complete shards" in message and f"{2 * 4 * CTX:,} tokens" in message
    assert "intact" in message and "--resume" in message
    assert not (out / shard_file(2)).exists() and not list(out.glob(".*.tmp"))
    ActivationStore.open(out, allow_incomplete=True)  # verifies checksums of what is there
    monkeypatch.setattr(writer_module, "write_shard", real)
    assert_same_store(cache_activations(model, HOOKS, tokens, out, config(resume=True)), uninterrupted)


def test_corrupt_truncated_or_missing_shard_is_detected_on_open(model, tokens, tmp_path):
    out = tmp_path / "store"
    cache_activations(model, HOOKS, tokens[:12], out, config())
    shard = out / shard_file(1)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"shard-00001.safetensors fails its checksum"):
        ActivationStore.open(out)
    store = ActivationStore.open(out, verify="sizes")
    with pytest.raises(StoreError, match="checksum"):
        store.verify()
    shard.write_bytes(bytes(data[:-4]))
    with pytest.raises(StoreError, match="does not match its manifest"):
        ActivationStore.open(out, verify="sizes")
    shard.unlink()
    with pytest.raises(StoreError, match="missing"):
        ActivationStore.open(out)
    with pytest.raises(StoreError, match="not an activation store"):
        ActivationStore.open(tmp_path / "nothing")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_storage_dtypes_round_exactly_like_a_cast(model, tokens, tmp_path, dtype, uninterrupted):
    store = cache_activations(model, HOOKS, tokens, tmp_path / "store", config(dtype=dtype))
    exact, stored = uninterrupted.read_all(), store.read_all()
    for name in HOOKS:
        assert stored.acts[name].dtype == torch.float32
        assert torch.equal(stored.acts[name], exact.acts[name].to(getattr(torch, dtype)).float())
    assert sum(s.bytes for s in store.shards) < 0.6 * sum(s.bytes for s in uninterrupted.shards)


def test_shards_are_plain_safetensors_with_tokens(uninterrupted, tokens):
    from safetensors.torch import load_file

    shard = load_file(str(uninterrupted.path / shard_file(2)))
    assert torch.equal(shard["tokens"].long(), tokens[8:12])
    assert shard[HOOKS[1]].shape == (4 * CTX, 16)
    manifest = json.loads((uninterrupted.path / MANIFEST).read_text())
    assert manifest["complete"] and manifest["n_tokens"] == 40 * CTX and manifest["stop_at_layer"] == 2


def test_forward_stops_after_the_last_needed_block(model, tokens, tmp_path):
    calls = {"later": 0, "final": 0}

    def count(key):
        def hook(act, hook):
            calls[key] += 1

        return hook

    model.add_hook(hook_name("resid_pre", 2), count("later"))
    model.add_hook("ln_final.hook_normalized", count("final"))
    try:
        cache_activations(model, HOOKS, tokens[:8], tmp_path / "store", config())
    finally:
        model.reset_hooks()
    assert calls == {"later": 0, "final": 0}
    with pytest.raises(UnknownHookError, match="blocks.1.hook_mlp_out"):
        cache_activations(model, ["blocks.1.hook_mlp_outt"], tokens, tmp_path / "other", config())


def test_batches_of_any_size_and_a_budget_give_the_same_store(model, tokens, tmp_path, uninterrupted):
    ragged = [tokens[:3], tokens[3:10], tokens[10:11], tokens[11:40], tokens[:5]]
    store = cache_activations(model, HOOKS, iter(ragged), tmp_path / "store", config(n_tokens=str(40 * CTX + 5)))
    assert len(store) == 40 * CTX
    assert_same_store(store, uninterrupted)


def interrupted_store(model, tokens, out, monkeypatch) -> None:
    """A store whose run was interrupted (Ctrl-C) while writing its third shard."""
    real = writer_module.write_shard
    calls = []

    def failing(path, tensors, metadata):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, tensors, metadata)

    monkeypatch.setattr(writer_module, "write_shard", failing)
    with pytest.raises(KeyboardInterrupt):
        cache_activations(model, HOOKS, tokens, out, config())
    monkeypatch.setattr(writer_module, "write_shard", real)


def test_resume_refuses_different_data_or_settings(model, tokens, tmp_path, monkeypatch):
    out = tmp_path / "store"
    interrupted_store(model, tokens, out, monkeypatch)
    with pytest.raises(StoreError, match="token stream differs"):
        cache_activations(model, HOOKS, tokens.flip(0), out, config(resume=True))
    with pytest.raises(StoreError, match="dtype"):
        cache_activations(model, HOOKS, tokens, out, config(resume=True, dtype="bfloat16"))
    with pytest.raises(StoreError, match="model"):
        cache_activations(tiny_model(seed=1), HOOKS, tokens, out, config(resume=True))
    assert len(ActivationStore.open(out, allow_incomplete=True).shards) == 2


def test_a_store_written_before_the_architecture_was_recorded_opens_and_resumes(model, tokens, tmp_path, monkeypatch,
                                                                                uninterrupted):
    """Stores keep full hook names, which the site renaming did not change; the model's architecture
    (which says where the MLP's input is) joined the manifest later and is absent from older ones."""
    out = tmp_path / "store"
    interrupted_store(model, tokens, out, monkeypatch)
    manifest = json.loads((out / MANIFEST).read_text())
    assert "architecture" in manifest["model"]
    del manifest["model"]["architecture"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert ActivationStore.open(out, allow_incomplete=True).model_architecture is None
    resumed = cache_activations(model, HOOKS, tokens, out, config(resume=True))
    assert_same_store(resumed, uninterrupted)
    assert resumed.model_architecture is None and uninterrupted.model_architecture == model.cfg.original_architecture
