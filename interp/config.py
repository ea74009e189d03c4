"""The settings vocabulary every config shares: layers, counts and integer lists.

Every config that takes layers has the field ``layers: str | None`` and reads it with
:func:`parse_layers`; every count of tokens or steps is a ``str`` read with
:func:`parse_count` (so ``16k`` and ``5M`` work everywhere); lists of integers given on
the command line (``'512,128,32'``) are read with :func:`parse_ints`. Bad values raise
:class:`~interp.errors.ConfigError` with one sentence that says what to write instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from interp.errors import ConfigError

Layers = str | None
"""How a config names layers: ``'all'``, ``'0,1,2'``, ``'0-3'`` or a mix (``'0-2,5'``);
``None`` means the command's default (all layers, unless its help says otherwise). In
Python, a list of ints or one int is accepted too."""

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_count(text: str | int, what: str = "count") -> int:
    """``"5M"`` -> 5_000_000, ``"16k"`` -> 16_000, ``"1200"`` -> 1200 (an int passes through)."""
    if isinstance(text, bool):
        raise ConfigError(f"{what} must be a number such as 16k or 5M, got {text!r}")
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMbBgG]?)\s*", str(text))
    if not match:
        raise ConfigError(f"{what} is not a count: {text!r}; write e.g. 5M, 500k or 1200000")
    return int(float(match.group(1)) * _SUFFIX[match.group(2).lower()])


def parse_positive_count(text: str | int, what: str) -> int:
    """:func:`parse_count`, refusing zero and negative counts."""
    value = parse_count(text, what)
    if value < 1:
        raise ConfigError(f"{what} must be at least 1, got {text!r}")
    return value


def parse_ints(text: str | Sequence[int] | None, what: str = "value") -> list[int] | None:
    """``'512,128,32'`` or ``'512 128'`` -> ``[512, 128, 32]``; None or blank -> None."""
    if text is None:
        return None
    if not isinstance(text, str):
        return [int(x) for x in text]
    if not text.strip():
        return None
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError as err:
        raise ConfigError(f"{what} must be integers separated by commas, e.g. '512,128,32'; got {text!r}") from err


def parse_layers(spec: Layers | int | Sequence[int], n_layers: int, *, default: Sequence[int] | None = None) -> list[int]:
    """The sorted, de-duplicated layers ``spec`` names, checked against a model of ``n_layers``.

    ``spec`` is ``'all'``, ``'0,1,2'``, ``'0-3'`` (ranges and lists mix), an int, a list of
    ints, or None (``default``, or every layer when ``default`` is None).
    """
    if spec is None:
        layers = list(default) if default is not None else list(range(n_layers))
    elif isinstance(spec, bool):
        raise ConfigError(f"layers must be 'all', '0,1,2' or '0-3', got {spec!r}")
    elif isinstance(spec, int):
        layers = [spec]
    elif isinstance(spec, str):
        layers = _parse_layer_text(spec, n_layers)
    else:
        layers = [int(layer) for layer in spec]
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise ConfigError(
            f"layer{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} out of range: "
            f"the model has layers 0..{n_layers - 1}"
        )
    return sorted(set(layers))


def _parse_layer_text(text: str, n_layers: int) -> list[int]:
    if text.strip() in ("all", ""):
        return list(range(n_layers))
    layers: list[int] = []
    for part in re.split(r"[,\s]+", text.strip()):
        if re.fullmatch(r"\d+-\d+", part):
            lo, hi = map(int, part.split("-"))
            if hi < lo:
                raise ConfigError(f"layer range {part!r} runs backwards; write it low-high, e.g. '0-3'")
            layers.extend(range(lo, hi + 1))
        elif part.isdigit():
            layers.append(int(part))
        else:
            raise ConfigError(f"bad layers {text!r}: write 'all', '0,1,2' or '0-3'")
    return layers


def flag(name: str) -> str:
    """A config field's command-line flag: ``n_calibration`` -> ``--n-calibration``."""
    return "--" + name.lstrip("-").replace("_", "-")


def check_positive(**values: float | int | None) -> None:
    """Raise :class:`ConfigError` naming (as its flag) the first of ``values`` that is set but below 1."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"{flag(name)} must be at least 1, got {value}")


def check_ctx_len(value: int | None) -> None:
    """Raise :class:`ConfigError` unless ``--ctx-len`` is unset or at least 2: a context is a BOS
    token and at least one more (whether it is at most the model's context is checked once the
    model is loaded, :func:`interp.models.check_context`)."""
    if value is not None and value < 2:
        raise ConfigError(f"--ctx-len must be at least 2 (BOS and one token), got {value}")


def check_fraction(name: str, value: float, *, open_low: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is in [0, 1] ((0, 1] with ``open_low``)."""
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ConfigError(f"{flag(name)} must be in {interval}, got {value}")


__all__ = ["Layers", "check_ctx_len", "check_fraction", "flag", "check_positive", "parse_count", "parse_ints", "parse_layers", "parse_positive_count"]
