"""Lazily imported package attributes (PEP 562), shared by the packages that re-export heavy modules."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

Target = str | tuple[str, str | None]
"""A module (the attribute has the exported name), ``(module, attribute)``, or ``(module, None)`` for the module itself."""


def lazy_exports(package: str, table: Mapping[str, Target]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name in ``table`` is imported on first
    use and then cached on the package; ``dir()`` lists them before that, for tab completion."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = table[name]
        module_name, attr = (target, name) if isinstance(target, str) else target
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
