"""Caching from a config: what ``interp cache run`` and ``interp cache info`` run.

:func:`run` loads the model and the token stream a :class:`CacheRunConfig` names, resolves
its sites and layers (or exact hooks) and writes the store with
:func:`~interp.cache.writer.cache_activations`; the store it returns is the product.
:func:`info` opens a store and checks its shards. A notebook calls the same functions::

    from interp.cache import CacheConfig, CacheRunConfig, run
    store = run(CacheRunConfig(out="acts/ref", layers="0,1", cache=CacheConfig(n_tokens="16k")))
    print(store.summary())
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from simple_parsing.helpers import field as simple_field

from interp.cache.store import ActivationStore
from interp.cache.writer import CacheConfig, cache_activations
from interp.config import check_positive, parse_layers
from interp.errors import ConfigError


@dataclass
class CacheRunConfig:
    """Run a model over a token stream and store the activations of several hook points."""

    out: str
    """Directory of the store (created; must be empty or an interrupted store with --resume)."""
    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    sites: list[str] | None = None
    """Sites to capture in every chosen layer, in TransformerLens' names (resid_pre, z, ln2_normalized, mlp_out, ...; `interp info MODEL` lists them), or TransformerLens hook names, relative to the block (hook_mlp_out) or full (blocks.3.hook_mlp_out, hook_embed); default: what a transcoder reads and predicts, ln2_normalized and mlp_out (resid_mid and mlp_out on post-norm models such as OLMo 2)."""
    layers: str | None = None
    """Layers to capture, e.g. '0,1', '0-3' or 'all' (default: all)."""
    hooks: list[str] | None = None
    """Full TransformerLens hook names to capture instead of sites x layers (e.g. blocks.5.hook_resid_post)."""
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

    def __post_init__(self) -> None:
        if self.hooks and (self.layers is not None or self.sites):
            raise ConfigError("pass either --hooks or --sites/--layers, not both")
        if self.cache.n_tokens is None and self.data == "reference":
            raise ConfigError("the reference corpus is endless: pass --n-tokens (e.g. 1M) to say how many tokens to cache")
        check_positive(ctx_len=self.ctx_len)


def run(cfg: CacheRunConfig) -> ActivationStore:
    """Cache the activations ``cfg`` names; returns the finished store, opened."""
    from interp.cache.store import STORE
    from interp.io import claim_output

    with claim_output(cfg.out, STORE, overwrite=cfg.cache.overwrite, resume=cfg.cache.resume):  # refused before the model loads
        return _run(cfg)


def _run(cfg: CacheRunConfig) -> ActivationStore:
    from interp.data import token_batches
    from interp.hooks import expand, mlp_input_site
    from interp.models import load_model

    model = load_model(cfg.model, device=cfg.device)
    if cfg.hooks:
        names = list(cfg.hooks)
    else:
        layers = parse_layers(cfg.layers, model.cfg.n_layers)
        sites = cfg.sites or [mlp_input_site(model.cfg.original_architecture), "mlp_out"]
        names = expand(model, sites, layers)
    ctx_len = cfg.ctx_len or model.cfg.n_ctx
    tokens = token_batches(cfg.data, model.tokenizer, ctx_len=ctx_len, batch_size=cfg.cache.batch_size, seed=cfg.seed)
    settings = cfg.cache
    if settings.description is None:
        settings = replace(settings, description=f"{cfg.data} (seed {cfg.seed}, ctx_len {ctx_len})")
    return cache_activations(model, names, tokens, cfg.out, settings, source={"data": cfg.data, "seed": cfg.seed})


@dataclass
class CacheInfoConfig:
    """Describe an activation store and check its shards against the manifest."""

    path: str = simple_field(positional=True)
    """The store directory."""
    verify: bool = True
    """Check every shard's checksum (reads the whole store); otherwise only sizes."""


def info(cfg: CacheInfoConfig) -> ActivationStore:
    """Open the store at ``cfg.path`` (an unfinished one too) and check its shards; raises
    :class:`~interp.errors.StoreError` for a missing, truncated or corrupt shard."""
    return ActivationStore.open(cfg.path, verify="full" if cfg.verify else "sizes", allow_incomplete=True)


__all__ = ["CacheInfoConfig", "CacheRunConfig", "info", "run"]
