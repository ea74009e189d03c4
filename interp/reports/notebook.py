"""Notebook display: the compact ``_repr_html_`` block and short plain ``__repr__`` strings.

A result's ``_repr_html_`` is :func:`summary_html`: a title, a key/value table of its
headline numbers, optionally a small table and a chart (an SVG from
:mod:`interp.reports.charts`, or a plotly figure inlined with its bundle). Its
``__repr__`` is :func:`plain_repr`: what it is and its headline numbers in a few lines,
never tensors or long lists (use :func:`brief` for lists). The full report of a result
(where it has one) is ``to_html()``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

from interp.reports.tables import Raw, cell

MAX_LINES = 8
_STYLE_BOX = "font-family:system-ui,sans-serif;font-size:13px;border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:4px 0;max-width:1100px"
_STYLE_TD = "padding:1px 10px 1px 0;text-align:left;border:none"


def brief(items: Iterable, n: int = 4) -> str:
    """A list as ``a, b, c, d, … (+12 more)``: never more than ``n`` items."""
    items = list(items)
    shown = ", ".join(str(x) for x in items[:n])
    return shown + (f", \u2026 (+{len(items) - n} more)" if len(items) > n else "")


def clip(text: str, n: int = 60) -> str:
    """``text`` cut to ``n`` characters with an ellipsis, as a repr (quoted)."""
    text = str(text)
    return repr(text if len(text) <= n else text[: n - 1] + "\u2026")


def plain_repr(name: str, headline: str, lines: Sequence[str] = (), max_lines: int = MAX_LINES) -> str:
    """``name(headline)`` then up to ``max_lines - 1`` indented lines (a count of the rest)."""
    lines = list(lines)
    keep = max_lines - 1
    if len(lines) > keep:
        lines = lines[: keep - 1] + [f"\u2026 {len(lines) - keep + 1} more"]
    return "\n".join([f"{name}({headline})", *(f"  {line}" for line in lines)])


def summary_html(
    title: str,
    rows: Mapping[str, object] | Sequence[tuple[str, object]],
    figure=None,
    *,
    table: str | None = None,
    note: str | None = None,
) -> str:
    """A compact block for Jupyter: title, headline numbers, an optional table and chart.

    Args:
        title: what the object is (escaped).
        rows: label -> value (escaped unless :class:`~interp.reports.tables.Raw`;
            floats formatted to 4 significant digits).
        figure: an SVG/HTML string (trusted), or a plotly figure (embedded with plotly.js
            inlined, so it works offline), or None.
        table: a trusted HTML table shown under the numbers.
        note: a muted line at the bottom (escaped), e.g. how to get the full report.
    """
    pairs = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    body = "".join(
        f'<tr><td style="{_STYLE_TD};color:#555">{html.escape(str(k))}</td><td style="{_STYLE_TD}">{cell(v, ".4g")}</td></tr>'
        for k, v in pairs
    )
    left = f'<table style="border-collapse:collapse;margin:0">{body}</table>'
    if table:
        left += f'<div style="margin-top:6px;overflow-x:auto">{table}</div>'
    right = ""
    if figure is not None:
        if isinstance(figure, str):
            right = figure
        else:
            from interp.reports.figures import figure_html

            right = figure_html(figure, include_plotlyjs=True)
    layout = f'<div style="display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start"><div>{left}</div>'
    layout += f"<div>{right}</div></div>" if right else "</div>"
    footer = f'<div style="color:#777;margin-top:4px">{html.escape(note)}</div>' if note else ""
    return f'<div style="{_STYLE_BOX}"><div style="font-weight:600;margin-bottom:4px">{html.escape(title)}</div>{layout}{footer}</div>'


__all__ = ["MAX_LINES", "Raw", "brief", "clip", "plain_repr", "summary_html"]
