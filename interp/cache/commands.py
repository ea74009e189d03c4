"""``interp cache run`` and ``interp cache info``: thin shells over :mod:`interp.cache.runner`."""

from __future__ import annotations

from interp.cache.runner import CacheInfoConfig, CacheRunConfig
from interp.commands import command, finish, say


@command("cache", "run", help="cache the activations of hook points to a sharded store", config=CacheRunConfig)
def _run(cfg: CacheRunConfig) -> int:
    from interp.cache.runner import run

    store = run(cfg)
    return finish(store, written={"store": store.path})


@command("cache", "info", help="describe and verify an activation store", config=CacheInfoConfig)
def _info(cfg: CacheInfoConfig) -> int:
    from interp.cache.runner import info

    store = info(cfg)
    say(store.summary(), "shards verified (sizes and checksums)" if cfg.verify else "shard sizes verified")
    return 0 if store.complete else 1
