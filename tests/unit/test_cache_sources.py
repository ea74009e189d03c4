"""The one test suite every ActivationSource passes: the in-memory stream and the disk store."""

from __future__ import annotations

import pytest
import torch

from interp.cache import (
    ActivationBatch,
    ActivationSource,
    ActivationStore,
    CacheConfig,
    StreamingActivations,
    cache_activations,
)
from interp.cache.source import mix
from interp.errors import UnknownHookError
from interp.hooks import hook_name

N_CTX, CTX, BLOCK = 24, 8, 4


def tiny_model(seed: int = 0):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=3, d_model=16, d_mlp=32, n_heads=2, d_head=8, d_vocab=50, n_ctx=16,
        act_fn="gelu_new", normalization_type="LN", seed=seed, device="cpu",
    )
    model = HookedTransformer(cfg)
    model.eval()
    return model


HOOKS = [hook_name("ln2_normalized", 0), hook_name("mlp_out", 0), hook_name("mlp_post", 1), hook_name("attn_z", 1)]


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 50, (N_CTX, CTX), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module", params=["streaming", "store", "streaming-fused"])
def source(request, model, tokens, tmp_path_factory):
    if request.param.startswith("streaming"):
        # A small mixing buffer, so several buffer rounds happen.
        return StreamingActivations(model, HOOKS, tokens, forward_batch=BLOCK, buffer_mb=40 * 4 * 128 / 2**20,
                                    fused=request.param == "streaming-fused")
    out = tmp_path_factory.mktemp("store") / "acts"
    # Shards of one forward batch each: 6 shards.
    cache_activations(model, HOOKS, tokens, out, CacheConfig(batch_size=BLOCK, shard_mb=1e-4, progress=False))
    return ActivationStore.open(out, buffer_mb=40 * 4 * 128 / 2**20)


@pytest.fixture(scope="module")
def truth(model, tokens):
    """run_with_cache on the same forward batches: hook -> [N_CTX * CTX, d] in stream order."""
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in HOOKS}
    for start in range(0, N_CTX, BLOCK):
        _, cache = model.run_with_cache(tokens[start : start + BLOCK], names_filter=HOOKS)
        for name in HOOKS:
            act = cache[name]
            parts[name].append(act.reshape(act.shape[0] * act.shape[1], -1))
    return {name: torch.cat(p) for name, p in parts.items()}


def epoch_rows(source, batch_size=40, **kwargs) -> list[ActivationBatch]:
    return list(source.batches(batch_size, **kwargs))


def test_is_an_activation_source(source):
    assert isinstance(source, ActivationSource)
    assert source.hook_names == HOOKS
    assert source.widths() == {HOOKS[0]: 16, HOOKS[1]: 16, HOOKS[2]: 32, HOOKS[3]: 16}
    assert len(source) == N_CTX * CTX


def test_every_row_exactly_once_per_epoch(source):
    for epoch in (0, 1):
        batches = epoch_rows(source, seed=3, epoch=epoch)
        ids = torch.cat([b.row_ids(CTX) for b in batches])
        assert ids.numel() == len(source)
        assert torch.equal(ids.sort().values, torch.arange(len(source)))
        sizes = [len(b) for b in batches]
        assert all(s == 40 for s in sizes[:-1]) and 0 < sizes[-1] <= 40


def test_order_is_deterministic_for_seed_and_epoch(source):
    first = torch.cat([b.row_ids(CTX) for b in epoch_rows(source, seed=7, epoch=2)])
    again = torch.cat([b.row_ids(CTX) for b in epoch_rows(source, seed=7, epoch=2)])
    other_epoch = torch.cat([b.row_ids(CTX) for b in epoch_rows(source, seed=7, epoch=3)])
    other_seed = torch.cat([b.row_ids(CTX) for b in epoch_rows(source, seed=8, epoch=2)])
    assert torch.equal(first, again)
    assert not torch.equal(first, other_epoch)
    assert not torch.equal(first, other_seed)


def test_rows_are_shuffled_across_blocks(source):
    batch = next(iter(source.batches(40, seed=0)))
    blocks = (batch.context // BLOCK).unique()
    assert blocks.numel() >= 2, "the first batch should mix rows of several blocks/shards"
    assert not torch.equal(batch.row_ids(CTX), batch.row_ids(CTX).sort().values)


def test_rows_equal_run_with_cache(source, tokens, truth):
    """Exactly with transformer-lens' forward (the default); to float rounding with the fused one."""
    exact = not source_is_fused(source)
    for batch in source.batches(64, seed=5):
        ids = batch.row_ids(CTX)
        assert torch.equal(batch.tokens, tokens.reshape(-1)[ids])
        assert torch.equal(batch.position, ids % CTX)
        for name in HOOKS:
            assert batch.acts[name].dtype == torch.float32
            if exact:
                assert torch.equal(batch.acts[name], truth[name][ids]), name
            else:
                torch.testing.assert_close(batch.acts[name], truth[name][ids], rtol=1e-5, atol=1e-6, msg=name)


def source_is_fused(source) -> bool:
    if isinstance(source, StreamingActivations):
        return source.fused
    return source.manifest["forward"] == "fused"


def test_device_argument_gives_float32_there(source):
    batch = next(iter(source.batches(16, device="cpu")))
    assert all(a.device.type == "cpu" and a.dtype == torch.float32 for a in batch.acts.values())
    assert batch.tokens.dtype == torch.long


def test_mix_never_drops_or_repeats_rows():
    blocks = [{"x": torch.arange(start, start + n)} for start, n in [(0, 7), (7, 30), (37, 1), (38, 12)]]
    out = torch.cat([b["x"] for b in mix(iter(blocks), 5, 10, torch.Generator().manual_seed(0))])
    assert torch.equal(out.sort().values, torch.arange(50))


def test_unknown_hook_lists_close_matches(model, tokens):
    with pytest.raises(UnknownHookError, match="blocks.0.hook_mlp_out"):
        StreamingActivations(model, ["blocks.0.hook_mlp_outt"], tokens)


def test_attention_pattern_is_refused(model, tokens):
    with pytest.raises(ValueError, match="hook_z"):
        StreamingActivations(model, [hook_name("attn_pattern", 0)], tokens)


def test_endless_token_iterator_needs_a_budget(model):
    def endless():
        while True:
            yield torch.zeros(2, CTX, dtype=torch.long)

    with pytest.raises(ValueError, match="n_tokens"):
        StreamingActivations(model, HOOKS, endless())
    source = StreamingActivations(model, HOOKS, endless(), n_tokens=5 * CTX + 3)
    assert len(source) == 5 * CTX
    assert len(StreamingActivations(model, HOOKS, endless(), n_tokens="0.1k")) == (100 // CTX) * CTX  # counts as text too


def test_batches_can_feed_autograd(source):
    """Rows are ordinary tensors (not inference-mode tensors), so a trainer can backprop through them."""
    batch = next(iter(source.batches(16)))
    weight = torch.ones(16, 3, requires_grad=True)
    (batch.acts[HOOKS[0]] @ weight).square().sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all()
