"""The state of every random number generator a training run draws from, to save in a
checkpoint and restore on resume (so a resumed run continues bit for bit)."""

from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict:
    """Python's, NumPy's and torch's (CPU) generator states."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
