"""Activation caching: capture many hook points in one forward pass, store them, read them shuffled.

- :func:`cache_activations` with :class:`CacheConfig` writes a sharded on-disk store
  (``interp cache run`` on the command line);
- :class:`ActivationStore` opens one and reads it;
- :class:`StreamingActivations` runs the model on the fly instead (no disk);
- both are an :class:`ActivationSource` yielding :class:`ActivationBatch` es.

See docs/cache.md.
"""

from interp.cache.source import ActivationBatch, ActivationSource
from interp.cache.store import ActivationStore
from interp.cache.streaming import StreamingActivations
from interp.cache.writer import CacheConfig, cache_activations

__all__ = [
    "ActivationBatch",
    "ActivationSource",
    "ActivationStore",
    "CacheConfig",
    "StreamingActivations",
    "cache_activations",
]
