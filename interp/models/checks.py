"""What a model can read, checked at the boundary: token ids and context lengths.

Every function that takes tokens or a context length from a user calls these, so each
refusal is one sentence naming what was wrong (interp never cuts an input short).
"""

from __future__ import annotations

import torch

from interp.errors import ConfigError


def check_tokens(model, tokens, *, what: str = "the prompt", error: type | None = None) -> None:
    """Refuse token ids ``model`` cannot read, each with one sentence: none at all, more than its
    context (``n_ctx``; interp never cuts inputs short), or ids outside its vocabulary.
    ``error`` is the kind raised (default :class:`~interp.errors.ConfigError`)."""
    error = error or ConfigError
    tokens = torch.as_tensor(tokens)
    n_ctx, d_vocab = model.cfg.n_ctx, model.cfg.d_vocab
    if tokens.numel() == 0:
        raise error(f"{what} is empty: give at least one token")
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise error(f"{what} must be integer token ids, got dtype {tokens.dtype}")
    length = tokens.shape[-1]
    if length > n_ctx:
        raise error(
            f"{what} is {length} tokens long but the model reads at most {n_ctx} (its n_ctx); "
            "shorten it (interp does not cut inputs short)"
        )
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= d_vocab:
        bad = lo if lo < 0 else hi
        raise error(f"{what} holds token id {bad}, outside the model's vocabulary (ids 0..{d_vocab - 1})")


def check_context(model, ctx_len: int, flag: str = "--ctx-len") -> None:
    """Refuse contexts longer than ``model`` reads (its ``n_ctx``), naming the flag that set them."""
    if ctx_len > model.cfg.n_ctx:
        raise ConfigError(f"{flag} {ctx_len} is longer than the model's context (n_ctx={model.cfg.n_ctx}); pass at most {model.cfg.n_ctx}")


__all__ = ["check_context", "check_tokens"]
