"""``interp cache run`` and ``interp cache info``: the command line over :mod:`interp.cache`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from simple_parsing.helpers import field as simple_field

from interp.cache.writer import CacheConfig
from interp.commands import command


@dataclass
class CacheRunConfig:
    """Run a model over a token stream and store the activations of several hook points."""

    out: str
    """Directory of the store (created; must be empty or an interrupted store with --resume)."""
    model: str = "reference"
    """'reference', 'gpt2', or a local checkpoint directory."""
    sites: list[str] = field(default_factory=lambda: ["mlp_in", "mlp_out"])
    """Sites to capture in every chosen layer (see `interp info MODEL`)."""
    layers: list[int] | None = None
    """Layers to capture (default: all)."""
    hooks: list[str] | None = None
    """Exact hook names to capture instead of sites x layers."""
    data: str = "reference"
    """Token source: 'reference', a local .txt/.jsonl file, or a Hugging Face dataset name."""
    ctx_len: int | None = None
    """Tokens per context (default: the model's n_ctx)."""
    seed: int = 0
    """Seed of the data stream (a resumed run must use the same one)."""
    device: str | None = None
    """Device for the forward pass (default: CUDA when available)."""
    cache: CacheConfig = field(default_factory=CacheConfig)
    """Batching, storage dtype, shard size, token budget and resume/overwrite."""


@command("cache", "run", help="cache the activations of hook points to a sharded store", config=CacheRunConfig)
def _run(cfg: CacheRunConfig) -> int:
    from interp.cache.writer import cache_activations
    from interp.data import token_batches
    from interp.hooks import resolve
    from interp.models import load_model

    if cfg.hooks and cfg.layers is not None:
        print("interp: error: pass either --hooks or --sites/--layers, not both", file=sys.stderr)
        return 2
    if cfg.cache.n_tokens is None and cfg.data == "reference":
        print("interp: error: the reference corpus is endless: pass --n-tokens N to say how many tokens to cache",
              file=sys.stderr)
        return 2
    model = load_model(cfg.model, device=cfg.device)
    if cfg.hooks:
        names = list(cfg.hooks)
    else:
        names = [name for site in cfg.sites for name in resolve(model, site, cfg.layers)]
    ctx_len = cfg.ctx_len or model.cfg.n_ctx
    tokens = token_batches(cfg.data, model.tokenizer, ctx_len=ctx_len, batch_size=cfg.cache.batch_size, seed=cfg.seed)
    if cfg.cache.description is None:
        cfg.cache.description = f"{cfg.data} (seed {cfg.seed}, ctx_len {ctx_len})"
    store = cache_activations(model, names, tokens, cfg.out, cfg.cache)
    print(store.describe())
    return 0


@dataclass
class CacheInfoConfig:
    """Describe an activation store and check its shards against the manifest."""

    path: str = simple_field(positional=True)
    """The store directory."""
    verify: bool = True
    """Check every shard's checksum (reads the whole store); otherwise only sizes."""


@command("cache", "info", help="describe and verify an activation store", config=CacheInfoConfig)
def _info(cfg: CacheInfoConfig) -> int:
    from interp.cache.store import ActivationStore

    store = ActivationStore.open(cfg.path, verify="full" if cfg.verify else "sizes", allow_incomplete=True)
    print(store.describe())
    print("shards verified (sizes and checksums)" if cfg.verify else "shard sizes verified")
    return 0 if store.complete else 1
