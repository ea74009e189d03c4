"""Deprecated names: the transcoder contract lives in :mod:`interp.transcoders`.

Circuits use interp's own :class:`~interp.transcoders.Transcoder`: a run loads with
:func:`interp.transcoders.load_run`, SAELens transcoders convert with
:func:`interp.transcoders.from_saelens` (done for you by every function that takes
transcoders), and a hand-set transcoder is :meth:`Transcoder.from_weights`. The names below
keep old code working and warn.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from interp._deprecation import warn
from interp.errors import TranscoderLoadError
from interp.transcoders.base import Transcoder

TranscoderLike = Transcoder
"""Deprecated alias of :class:`interp.transcoders.Transcoder`."""


def load_transcoders(path: str | Path, device: str = "cpu") -> dict[int, Transcoder]:
    """Deprecated: :func:`interp.transcoders.load_run` (same result)."""
    from interp.transcoders.loading import load_run

    warn("interp.circuits.load_transcoders", "interp.transcoders.load_run")
    return load_run(path, device=device)


def PlantedTranscoder(  # noqa: N802 - the deprecated class name
    W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor | None = None, W_skip: Tensor | None = None
) -> Transcoder:
    """Deprecated: :meth:`Transcoder.from_weights`. ``W_skip`` here is ``[d_in, d_out]``, as this
    function always took it (``from_weights`` takes SAELens' ``[d_out, d_in]``)."""
    warn("PlantedTranscoder", "interp.transcoders.Transcoder.from_weights (W_skip as [d_out, d_in])")
    return Transcoder.from_weights(W_enc, b_enc, W_dec, b_dec, None if W_skip is None else W_skip.T)


__all__ = ["PlantedTranscoder", "TranscoderLike", "TranscoderLoadError", "load_transcoders"]
