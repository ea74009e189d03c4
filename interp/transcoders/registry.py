"""Architectures by name: each module registers its config and transcoder class here.

The CLI's ``--arch`` choices, the loaders and the trainer all read this registry, so an
architecture is listed in exactly one place (its own module's ``@register``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from interp.errors import UnknownArchitectureError

ARCH_MODULES = (
    "interp.transcoders.relu",
    "interp.transcoders.topk",
    "interp.transcoders.skip",
    "interp.transcoders.jumprelu",
)
"""Modules imported (once) to fill the registry."""


@dataclass(frozen=True)
class Architecture:
    name: str
    config: type
    transcoder: type
    sparse_k: bool
    """True when the architecture keeps exactly ``k`` latents per row (TopK family)."""
    saelens: str | None
    """SAELens ``architecture`` this one exports as, or None when SAELens has no equivalent."""


_REGISTRY: dict[str, Architecture] = {}


def register(name: str, config: type, *, sparse_k: bool = False, saelens: str | None = None) -> Callable:
    """Class decorator: register a :class:`~interp.transcoders.base.Transcoder` subclass as ``name``."""

    def wrap(cls: type) -> type:
        cls.arch = name
        _REGISTRY[name] = Architecture(name, config, cls, sparse_k, saelens)
        return cls

    return wrap


def _load_all() -> None:
    for module in ARCH_MODULES:
        importlib.import_module(module)


def names() -> list[str]:
    """Registered architecture names."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Architecture:
    """The architecture registered as ``name``."""
    _load_all()
    if name not in _REGISTRY:
        raise UnknownArchitectureError(
            f"unknown transcoder architecture {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]
