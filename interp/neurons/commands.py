"""``interp neurons decode`` and ``interp neurons clamp``: thin shells over the Python API.

Each command calls the function a notebook would call (:func:`interp.neurons.decoding.run`,
:func:`interp.neurons.clamping.run`), prints the result's summary and writes it into ``--out``.
"""

from __future__ import annotations

from interp.commands import command, finish
from interp.neurons.clamping import ClampConfig
from interp.neurons.decoding import DecodeConfig


@command("neurons", "decode", help="top and bottom tokens of every neuron through the unembedding", config=DecodeConfig)
def _decode(cfg: DecodeConfig) -> int:
    from interp.neurons.decoding import run

    return finish(run(cfg), cfg.out)


@command("neurons", "clamp", help="clamp a neuron and measure its decoded tokens against random neurons", config=ClampConfig)
def _clamp(cfg: ClampConfig) -> int:
    from interp.neurons.clamping import run

    return finish(run(cfg), cfg.out)
