"""Activation caching: capture many hook points in one forward pass, store them, read them shuffled.

- :func:`run` with :class:`CacheRunConfig` loads a model and a token stream and writes a
  store (what ``interp cache run`` runs); :func:`cache_activations` with :class:`CacheConfig`
  does the same for a model and tokens you already hold;
- :class:`ActivationStore` opens one and reads it (:func:`info` opens and verifies one, as
  ``interp cache info`` does);
- :class:`StreamingActivations` runs the model on the fly instead (no disk);
- both are an :class:`ActivationSource` yielding :class:`ActivationBatch` es.

See docs/cache.md.
"""

from interp.cache.runner import CacheInfoConfig, CacheRunConfig, info, run
from interp.cache.source import ActivationBatch, ActivationSource
from interp.cache.store import ActivationStore
from interp.cache.streaming import StreamingActivations
from interp.cache.writer import CacheConfig, cache_activations

__all__ = [
    "ActivationBatch",
    "ActivationSource",
    "ActivationStore",
    "CacheConfig",
    "CacheInfoConfig",
    "CacheRunConfig",
    "StreamingActivations",
    "cache_activations",
    "info",
    "run",
]
