"""What a trained artefact records about the model it was trained on, and the check that it is used on that model.

:func:`fingerprint` describes a model by its shape (architecture, layers, widths, vocabulary,
context, normalisation) and a short hash of its weights. Every artefact interp trains records
it (a transcoder run's ``run.json`` and each ``cfg.json``'s ``metadata``, a CLT's config, a
codebook run, an activation store's manifest), and :func:`check_fingerprint` refuses to use an
artefact on a model with another fingerprint unless the caller forces it. Artefacts written
before fingerprints were recorded are accepted with a logged warning.

The weight hash reads :data:`SAMPLES` evenly spaced entries of every parameter (so it costs
microseconds per tensor even at GPT-2's size), rounded to bfloat16 first, so a model moved to
another device or cast to a lower precision keeps its hash. It tells apart models trained or
fine-tuned separately (their weights differ everywhere); it is no checksum of every weight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from interp.errors import InterpError, TranscoderLoadError

logger = logging.getLogger(__name__)

SAMPLES = 256
"""Entries of each parameter the weight hash reads (evenly spaced, first and last included)."""
SHAPE_KEYS: tuple[str, ...] = ("architecture", "n_layers", "d_model", "d_mlp", "d_vocab", "n_ctx", "normalization")
"""The fingerprint's keys besides ``name`` and ``weights`` (all compared by :func:`check_fingerprint`)."""


def fingerprint(model) -> dict:
    """``{"name", "architecture", "n_layers", "d_model", "d_mlp", "d_vocab", "n_ctx",
    "normalization", "weights"}`` of a HookedTransformer; ``weights`` is a 16-hex-digit XXH3-64
    of fixed slices of every parameter (see the module docstring)."""
    import xxhash

    cfg = model.cfg
    digest = xxhash.xxh3_64()
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            flat = param.detach().reshape(-1)
            n = flat.numel()
            picks = flat if n <= SAMPLES else flat[torch.arange(SAMPLES, device=flat.device) * (n - 1) // (SAMPLES - 1)]
            values = picks.float().to(torch.bfloat16).cpu()
            digest.update(f"{name}:{tuple(param.shape)};".encode())
            digest.update(values.view(torch.int16).numpy().tobytes())
    return {
        "name": str(cfg.model_name),
        "architecture": cfg.original_architecture,
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "d_mlp": cfg.d_mlp,
        "d_vocab": cfg.d_vocab,
        "n_ctx": cfg.n_ctx,
        "normalization": cfg.normalization_type,
        "weights": digest.hexdigest(),
    }


def describe(fp: Mapping) -> str:
    """``'gpt2' (weights 1a2b..., 12 layers, d_model 768)``: a fingerprint in a few words."""
    return f"{fp.get('name')!r} (weights {fp.get('weights')}, {fp.get('n_layers')} layers, d_model {fp.get('d_model')})"


def check_fingerprint(
    recorded: Mapping | None,
    model,
    *,
    what: str,
    force: bool = False,
    error: type[InterpError] = TranscoderLoadError,
    current: Mapping | None = None,
    verb: str = "were trained on",
    fix: str = "use them with the model they were trained on, or pass --force true (force=True) to use them anyway",
) -> dict | None:
    """Check that an artefact recording ``recorded`` (its :func:`fingerprint` at training) is
    used on ``model``; ``what`` names the artefact in messages ("these transcoders").

    Returns None when the fingerprints agree, or when ``recorded`` is None / has no weight hash
    (an artefact from before fingerprints: accepted, with a logged warning). With another
    fingerprint it raises ``error`` naming both models, unless ``force``: then it logs a warning
    and returns ``{"forced": True, "trained_on": recorded, "used_on": current}`` for the caller
    to record in its output. ``current`` is ``fingerprint(model)`` when already computed;
    ``verb`` and ``fix`` word the message (``what verb MODEL, not ...; fix``).
    """
    if not recorded or not recorded.get("weights"):
        logger.warning("%s record no model fingerprint (written before interp recorded one, or by another library): "
                       "cannot check that they were trained on this model", what)
        return None
    current = dict(current) if current is not None else fingerprint(model)
    differ = [k for k in (*SHAPE_KEYS, "weights") if k in recorded and recorded.get(k) != current.get(k)]
    if not differ:
        return None
    message = f"{what} {verb} {describe(recorded)}, but this model is {describe(current)} ({', '.join(differ)} differ)"
    if not force:
        raise error(f"{message}; {fix}")
    logger.warning("%s; using them anyway, as force asks (the output records it)", message)
    return {"forced": True, "trained_on": dict(recorded), "used_on": current}


__all__ = ["SAMPLES", "SHAPE_KEYS", "check_fingerprint", "describe", "fingerprint"]
