"""Architectures by name: each module of :mod:`interp.transcoders.architectures` registers
its config and transcoder class here.

The CLI's ``--arch`` choices and per-architecture flags, the loaders and the trainer all
read this registry, so an architecture is described in exactly one place: its own module.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from interp.errors import UnknownArchitectureError


@dataclass(frozen=True)
class Architecture:
    name: str
    config: type
    transcoder: type
    sparse_k: bool
    """True when the architecture keeps exactly ``k`` latents per row (TopK family)."""
    saelens: str | None
    """SAELens ``architecture`` this one exports as, or None when SAELens has no equivalent."""

    @property
    def cross_layer(self) -> bool:
        """True for a cross-layer transcoder (one module over all the run's layers)."""
        return bool(getattr(self.transcoder, "cross_layer", False))

    def settings(self) -> list[dataclasses.Field]:
        """The fields of this architecture's config beyond its shape (``d_in``, ``d_out``, ``d_sae``, ...)."""
        return [f for f in dataclasses.fields(self.config) if f.name not in self.config.shape]


_REGISTRY: dict[str, Architecture] = {}
_loaded = False


def register(name: str, config: type, *, sparse_k: bool = False, saelens: str | None = None) -> Callable:
    """Class decorator: register a :class:`~interp.transcoders.base.Transcoder` subclass as ``name``."""

    def wrap(cls: type) -> type:
        cls.arch = name
        _REGISTRY[name] = Architecture(name, config, cls, sparse_k, saelens)
        return cls

    return wrap


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    from interp.transcoders import architectures

    for module in pkgutil.iter_modules(architectures.__path__):
        importlib.import_module(f"{architectures.__name__}.{module.name}")
    _loaded = True


def names(*, cross_layer: bool | None = None) -> list[str]:
    """Registered architecture names (only the per-layer ones with ``cross_layer=False``, only
    the cross-layer ones with ``True``)."""
    _load_all()
    return sorted(n for n, a in _REGISTRY.items() if cross_layer is None or a.cross_layer == cross_layer)


def get(name: str) -> Architecture:
    """The architecture registered as ``name``."""
    _load_all()
    if name not in _REGISTRY:
        raise UnknownArchitectureError(
            f"unknown transcoder architecture {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def settings() -> dict[str, tuple[Any, str, list[str]]]:
    """Every architecture setting by name: ``(type, help text, architectures that take it)``.

    The help text is the field's docstring in the first architecture that has the setting,
    per-layer architectures first (a setting a cross-layer transcoder shares with them, such
    as ``k``, keeps their help; its own meaning there is in its own settings' help).
    """
    from simple_parsing.docstring import get_attribute_docstring

    _load_all()
    out: dict[str, tuple[Any, str, list[str]]] = {}
    for name in sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].cross_layer, n)):
        arch = _REGISTRY[name]
        for f in arch.settings():
            if f.name in out:
                out[f.name][2].append(name)
                continue
            doc = get_attribute_docstring(arch.config, f.name)
            text = (doc.docstring_below or doc.comment_inline or doc.comment_above or "").strip()
            out[f.name] = (f.type, text, [name])
    return out
