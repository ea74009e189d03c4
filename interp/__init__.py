"""interp: mechanistic interpretability of transformer MLPs and attention.

Heavy submodules load lazily, so ``import interp`` is cheap::

    import interp
    model = interp.load_model("reference")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("interp.models", "load_model"),
    "model_info": ("interp.models", "model_info"),
    "hooks": ("interp.hooks", None),
    "data": ("interp.data", None),
    "planted": ("interp.planted", None),
    "reference": ("interp.reference", None),
}

if TYPE_CHECKING:
    from interp import data, hooks, planted, reference
    from interp.models import load_model, model_info


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value



def __dir__() -> list[str]:
    """Module attributes and the lazily imported names, so tab completion lists them (PEP 562)."""
    return sorted(set(globals()) | set(_LAZY))

__all__ = ["__version__", *_LAZY]
