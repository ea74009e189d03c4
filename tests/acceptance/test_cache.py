"""What issue 3 must show, on the reference model.

- Stored activations equal ``run_with_cache`` exactly in float32.
- A run killed mid-way (SIGKILL, or Ctrl-C = SIGINT) and resumed gives the same store as
  one uninterrupted run: the same shard bytes (checksums) and the same rows.
- The shuffled reader covers every row exactly once per epoch and is deterministic for a seed.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from interp.cache import ActivationStore, CacheConfig, cache_activations
from interp.cache.store import MANIFEST
from interp.data import token_batches
from interp.hooks import resolve

CTX, BATCH, N_CTX = 32, 4, 48
# Reference model, ln2_normalized + mlp_out of 4 layers: 8 x 128 floats = 4 KiB per row, 0.5 MiB
# per forward batch of 4 x 32 tokens; 1.25 MiB shards hold 2 batches -> 6 shards.
SHARD_MB = 1.25


def cache_config(**overrides) -> CacheConfig:
    return CacheConfig(
        **{"batch_size": BATCH, "shard_mb": SHARD_MB, "n_tokens": str(N_CTX * CTX), "progress": False, **overrides}
    )


def reference_tokens(model):
    return itertools.islice(token_batches("reference", model.tokenizer, ctx_len=CTX, batch_size=BATCH, seed=0), 100)


def hooks(model) -> list[str]:
    return resolve(model, "ln2_normalized") + resolve(model, "mlp_out")


@pytest.fixture(scope="module")
def store(reference_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "reference"
    return cache_activations(reference_model, hooks(reference_model), reference_tokens(reference_model), out, cache_config())


def test_stored_activations_equal_run_with_cache_exactly_in_float32(store, reference_model):
    rows = store.read_all()
    contexts = rows.tokens.reshape(N_CTX, CTX)
    assert len(store.shards) == 6 and len(store) == N_CTX * CTX
    for start in range(0, N_CTX, BATCH):
        _, cache = reference_model.run_with_cache(contexts[start : start + BATCH], names_filter=store.hook_names)
        span = slice(start * CTX, (start + BATCH) * CTX)
        for name in store.hook_names:
            assert torch.equal(rows.acts[name][span], cache[name].reshape(BATCH * CTX, -1)), name


def test_shuffled_reader_covers_every_row_once_and_is_deterministic(store):
    orders = {}
    for seed, epoch in [(0, 0), (0, 1), (1, 0), (0, 0)]:
        ids = torch.cat([b.row_ids(CTX) for b in store.batches(100, seed=seed, epoch=epoch)])
        assert torch.equal(ids.sort().values, torch.arange(len(store))), "every row exactly once"
        if (seed, epoch) in orders:
            assert torch.equal(ids, orders[(seed, epoch)]), "same (seed, epoch), same order"
        orders[(seed, epoch)] = ids
    assert not torch.equal(orders[(0, 0)], orders[(0, 1)])
    assert not torch.equal(orders[(0, 0)], orders[(1, 0)])


CHILD = """
import itertools, signal, sys, time
# A parent that ignores SIGINT (pytest after some plugins ran) passes SIG_IGN on through exec;
# restore Python's normal Ctrl-C behaviour, which is what a user's run has.
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
import torch
from interp.cache import CacheConfig, cache_activations
from interp.data import token_batches
from interp.hooks import resolve
from interp.models import load_model

out, marker, threads = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = load_model("reference", device="cpu")

def stream():
    source = token_batches("reference", model.tokenizer, ctx_len={ctx}, batch_size={batch}, seed=0)
    for index, tokens in enumerate(itertools.islice(source, 100)):
        if index == 5:  # shards 0 and 1 are done, shard 2 is half full: wait here to be killed
            marker.write_text("blocked")
            while True:
                time.sleep(0.05)
        yield tokens

cfg = CacheConfig(batch_size={batch}, shard_mb={shard_mb}, n_tokens="{n_tokens}", progress=False)
cache_activations(model, resolve(model, "ln2_normalized") + resolve(model, "mlp_out"), stream(), out, cfg)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_run_resumed_equals_uninterrupted_run(sig, store, reference_model, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD).format(ctx=CTX, batch=BATCH, shard_mb=SHARD_MB, n_tokens=N_CTX * CTX))
    out, marker = tmp_path / "store", tmp_path / "blocked"
    child = subprocess.Popen(
        [sys.executable, str(script), str(out), str(marker), str(torch.get_num_threads())],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 900
        while not (marker.exists() and len(json.loads((out / MANIFEST).read_text())["shards"]) == 2):
            assert child.poll() is None, f"the child exited early: {child.stderr.read()}"
            assert time.monotonic() < deadline, "the child did not reach the interruption point"
            time.sleep(0.05)
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    if sig == signal.SIGKILL:
        assert child.returncode == -signal.SIGKILL
    else:
        assert child.returncode != 0 and "KeyboardInterrupt" in stderr
    manifest = json.loads((out / MANIFEST).read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 2
    assert len(ActivationStore.open(out, allow_incomplete=True)) == 2 * 2 * BATCH * CTX

    resumed = cache_activations(
        reference_model, hooks(reference_model), reference_tokens(reference_model), out, cache_config(resume=True)
    )
    assert [(s.bytes, s.checksum) for s in resumed.shards] == [(s.bytes, s.checksum) for s in store.shards]
    a, b = resumed.read_all(), store.read_all()
    assert torch.equal(a.tokens, b.tokens)
    for name in store.hook_names:
        assert torch.equal(a.acts[name], b.acts[name])
