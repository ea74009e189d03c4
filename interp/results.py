"""One base for every result an analysis returns: dict and JSON round trips, text, HTML.

A result is a dataclass that subclasses :class:`Result`. It gets, without writing them:

- ``to_dict()`` / ``from_dict()``: nested (results and dataclasses inside lists, dicts and
  tuples are rebuilt from the field annotations; tensors become lists and back);
- ``save(path)`` / ``load(path)``: JSON written atomically, with the result's ``kind`` and
  ``schema_version``, so a file is checked before it is read back;
- ``write(directory)``: ``{stem}.json`` plus, where the result has a full report,
  ``{stem}.html`` (and ``plotly.min.js``, once per folder, where it has plots), the files a
  command writes into its ``--out``;
- ``_repr_html_()``: the compact notebook block of :mod:`interp.reports` built from
  :meth:`Result.headline`, and ``summary()``: the text the command line prints.

A subclass sets ``stem`` (its file name), implements ``summary()`` and, where a person would
look at a page, ``to_html()`` (a renderer in its package's ``html.py``). It raises
``schema_version`` when its fields change and may override :meth:`Result.upgrade` to read
older files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from interp.errors import StoreError

logger = logging.getLogger(__name__)

VERSION_KEY = "schema_version"
KIND_KEY = "kind"


class Result:
    """Base class of analysis results (subclasses are dataclasses)."""

    schema_version: ClassVar[int] = 1
    """Version of the dict layout; raise it when fields change."""
    stem: ClassVar[str] = "result"
    """File name (without suffix) under which :meth:`write` saves the result."""
    title: ClassVar[str] = ""
    """What the result is, for the notebook block (default: the class name)."""

    # --- dict round trip ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-able data, with ``kind`` and ``schema_version``."""
        data = {f.name: encode(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        data[KIND_KEY] = type(self).__name__
        data[VERSION_KEY] = type(self).schema_version
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Rebuild a result from :meth:`to_dict`'s output (older versions via :meth:`upgrade`)."""
        data = dict(data)
        kind = data.pop(KIND_KEY, cls.__name__)
        if kind != cls.__name__ and kind not in getattr(cls, "former_kinds", ()):
            raise StoreError(f"this file holds a {kind}, not a {cls.__name__}")
        version = data.pop(VERSION_KEY, 1)
        if version > cls.schema_version:
            raise StoreError(
                f"this {cls.__name__} was written by a newer interp (schema {version}, this one reads up to "
                f"{cls.schema_version}); upgrade interp to read it"
            )
        if version < cls.schema_version:
            data = cls.upgrade(data, version)
        return decode(cls, data)

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Bring the dict of an older ``version`` up to date (default: refuse)."""
        raise StoreError(
            f"this {cls.__name__} file has schema {version}, which this interp no longer reads "
            f"(it reads {cls.schema_version}); recompute the result"
        )

    # --- files -------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON to ``path`` atomically; returns the path."""
        from interp.io import atomic_write_json

        return atomic_write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | Path):
        """Read a result written by :meth:`save` (a directory means ``directory/{stem}.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / f"{cls.stem}.json"
        if not path.is_file():
            raise StoreError(f"{path} not found: no saved {cls.__name__} there")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StoreError(f"{path} is not a JSON file written by interp ({err}); was it overwritten?") from err
        if not isinstance(data, dict):
            raise StoreError(f"{path} does not hold a saved {cls.__name__}")
        try:
            return cls.from_dict(data)
        except (TypeError, KeyError) as err:
            raise StoreError(f"{path} does not hold a complete {cls.__name__} ({err})") from err

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write the data files (:meth:`write_data`) and ``{stem}.html``, where there is a full
        report, into ``directory``; returns the paths by kind. A page's plotly.js goes into
        ``plotly.min.js`` beside it, once per folder (:func:`interp.reports.figures.write_page`)."""
        from interp.reports.figures import write_page

        directory = Path(directory)
        paths = self.write_data(directory)
        html = self.to_html()
        if html is not None:
            paths["html"] = write_page(directory / f"{self.stem}.html", html)
        return paths

    def write_data(self, directory: Path) -> dict[str, Path]:
        """The data files :meth:`write` puts in ``directory`` (default: ``{stem}.json``); a result
        made of other results, or holding tensors, writes its own files here."""
        return {"json": self.save(directory / f"{self.stem}.json")}

    # --- display -----------------------------------------------------------------

    def summary(self) -> str:
        """What the command line prints: the headline numbers as text."""
        rows = self.headline()
        width = max((len(k) for k, _ in rows), default=0)
        lines = [self.title or type(self).__name__]
        lines += [f"  {k:{width}s}  {_fmt(v)}" for k, v in rows]
        return "\n".join(lines)

    def __getattr__(self, name: str) -> Any:
        # ``table()`` is the deprecated name of summary() (results used to disagree on the two names);
        # looked up only when the class has no ``table`` of its own (a method or a field)
        if name == "table":
            from interp._deprecation import warn

            kind = type(self).__name__
            warn(f"{kind}.table()", f"{kind}.summary()", stacklevel=2)
            return self.summary
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def headline(self) -> list[tuple[str, Any]]:
        """``(label, value)`` pairs of the headline numbers (the notebook block's rows)."""
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if isinstance(getattr(self, f.name), (int, float, str)) and not isinstance(getattr(self, f.name), bool)][:8]

    def to_html(self) -> str | None:
        """The full self-contained HTML report, or None when the result has none."""
        return None

    def _repr_html_(self) -> str:
        from interp.reports import summary_html

        note = "to_html() for the full report" if type(self).to_html is not Result.to_html else None
        return summary_html(self.title or type(self).__name__, self.headline(), note=note)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --- encoding ----------------------------------------------------------------------


def encode(value: Any) -> Any:
    """``value`` as JSON-able data: dataclasses and results by field, tensors as lists,
    tuples as lists, paths as strings, non-finite floats as strings JSON can hold."""
    if isinstance(value, Result):
        data = value.to_dict()
        data.pop(KIND_KEY, None)
        data.pop(VERSION_KEY, None)
        return data
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_key(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return value  # json writes NaN/Infinity, and reads them back
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__.startswith(("torch", "numpy")):
        return tolist()
    return value


def _key(key: Any) -> str | int | float | bool | None:
    return key if isinstance(key, (str, int, float, bool)) or key is None else str(key)


def decode(cls: type, data: Mapping[str, Any]):
    """Build dataclass ``cls`` from ``data``, rebuilding nested values from the field types."""
    hints = _hints(cls)
    kwargs = {}
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for name, value in data.items():
        if name not in names:
            continue
        kwargs[name] = _decode_value(hints.get(name, Any), value)
    return cls(**kwargs)


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError) as err:  # an annotation names a type only imported for checking
        logger.debug("decode %s: field types unresolved (%s); nested values stay plain", cls.__name__, err)
        return {}


def _decode_value(hint: Any, value: Any) -> Any:
    if value is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _decode_value(options[0], value) if len(options) == 1 else value
    if origin in (list, typing.List) and args:  # noqa: UP006 - typing.List may still appear in annotations
        return [_decode_value(args[0], v) for v in value]
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode_value(args[0], v) for v in value)
        return tuple(_decode_value(a, v) for a, v in zip(args, value))
    if origin is dict and len(args) == 2:
        key_type = args[0]
        return {(_key_back(key_type, k)): _decode_value(args[1], v) for k, v in value.items()}
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            return decode(hint, value)
        if _is_tensor_type(hint):
            import torch

            return torch.tensor(value)
    if _is_tensor_type(hint):
        import torch

        return torch.tensor(value)
    return value


def _key_back(key_type: Any, key: Any) -> Any:
    if key_type is int and isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return key


def _is_tensor_type(hint: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return hint is torch.Tensor or getattr(hint, "array_type", None) is torch.Tensor


__all__ = ["KIND_KEY", "VERSION_KEY", "Result", "decode", "encode"]
