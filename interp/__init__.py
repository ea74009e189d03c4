"""interp: mechanistic interpretability of transformer MLPs and attention.

Heavy submodules load lazily, so ``import interp`` is cheap::

    import interp
    model = interp.load_model("reference")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = ["__version__", *_LAZY]
