"""Escaped HTML tables and the number formatting every report shares."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from interp.errors import ConfigError


class Raw(str):
    """Trusted HTML: a table cell (or summary value) that is inserted without escaping."""


def fmt(value, float_format: str = ".4f") -> str:
    """A value as report text: ``None`` as a dash, floats with ``float_format`` (nan kept),
    ints with thousands separators, booleans as yes/no, anything else as ``str``. Not escaped."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, float_format)
    return str(value)


def cell(value, float_format: str = ".4f") -> str:
    """One cell's HTML: :class:`Raw` as is, everything else formatted and escaped."""
    if isinstance(value, Raw):
        return str(value)
    return html.escape(fmt(value, float_format))


def table(
    header: Sequence[str],
    rows: Sequence[Sequence],
    float_format: str | Sequence[str] = ".4f",
    class_: str | None = None,
    max_rows: int | None = None,
) -> str:
    """An HTML table; every cell is escaped unless it is :class:`Raw`.

    ``float_format`` is one format for all columns or one per column. Numeric cells are
    right-aligned (class ``num``). With ``max_rows``, longer tables show their first
    ``max_rows`` rows and a last row counting the rest.
    """
    formats = [float_format] * len(header) if isinstance(float_format, str) else list(float_format)
    if len(formats) != len(header):
        raise ConfigError(f"float_format has {len(formats)} entries for {len(header)} columns")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    hidden = 0
    if max_rows is not None and len(rows) > max_rows:
        rows, hidden = rows[:max_rows], len(rows) - max_rows
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            attr = ' class="num"' if numeric else ""
            cells.append(f"<td{attr}>{cell(value, formats[min(i, len(formats) - 1)])}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if hidden:
        body.append(f'<tr><td colspan="{len(header)}" class="muted">\u2026 {hidden:,} more</td></tr>')
    klass = f' class="{html.escape(class_)}"' if class_ else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def token_text(token) -> str:
    """A vocabulary entry as readable text: byte-level BPE's ``Ġ`` and SentencePiece's ``▁`` as spaces."""
    return str(token).replace("\u0120", " ").replace("\u2581", " ")
