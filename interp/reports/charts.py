"""Small static SVG charts for notebook summaries.

No JavaScript and a few kilobytes each, so a summary shows its plot in Jupyter, in
VS Code and where notebooks are rendered without scripts (GitHub, nbviewer). The
interactive plotly figures stay in the full reports (``to_html``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
Number = float | int
_MARGIN = {"left": 46, "right": 8, "top": 20, "bottom": 28}


def _num(x: Number) -> str:
    return f"{x:.3g}"


def _text(x: Number, y: Number, text: str, anchor: str = "start", size: int = 10, colour: str = "#555") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{colour}" text-anchor="{anchor}">'
            f"{html.escape(text)}</text>")


def _frame(width: int, height: int, title: str | None, body: list[str]) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" style="font-family:sans-serif;background:#fff">']
    if title:
        parts.append(_text(width / 2, 13, title, "middle", 11, "#222"))
    return "".join(parts + body + ["</svg>"])


def _axes(width: int, height: int, lo: Number, hi: Number, x_lo: str, x_hi: str, x_label: str | None,
          y_label: str | None, log_y: bool) -> list[str]:
    left, bottom, top = _MARGIN["left"], height - _MARGIN["bottom"], _MARGIN["top"]
    right = width - _MARGIN["right"]
    show = (lambda v: _num(10**v)) if log_y else _num
    out = [f'<path d="M{left},{top} V{bottom} H{right}" stroke="#999" fill="none"/>',
           _text(left - 3, top + 4, show(hi), "end"), _text(left - 3, bottom, show(lo), "end"),
           _text(left, bottom + 12, x_lo), _text(right, bottom + 12, x_hi, "end")]
    if x_label:
        out.append(_text((left + right) / 2, bottom + 12, x_label, "middle"))
    if y_label:
        out.append(f'<text x="10" y="{(top + bottom) / 2:.1f}" font-size="10" fill="#555" text-anchor="middle" '
                   f'transform="rotate(-90 10 {(top + bottom) / 2:.1f})">{html.escape(y_label)}</text>')
    return out


def line_svg(
    series: Mapping[str, Sequence[Number | None]] | Sequence[Number | None],
    x: Sequence[Number] | None = None,
    *,
    title: str | None = None,
    x_label: str | None = None,
    y_label: str | None = None,
    log_y: bool = False,
    width: int = 360,
    height: int = 150,
) -> str:
    """Lines (one per named series, sharing ``x``; default 0, 1, ...) as an SVG string.

    Non-finite values (and non-positive ones with ``log_y``) are skipped. Returns ``""``
    when there is nothing to draw.
    """
    named = dict(series) if isinstance(series, Mapping) else {"": list(series)}
    n = max((len(v) for v in named.values()), default=0)
    xs = list(x) if x is not None else list(range(n))

    def usable(v) -> bool:
        return v is not None and math.isfinite(v) and (v > 0 or not log_y)

    ys = {k: [(math.log10(v) if log_y else v) if usable(v) else None for v in vals] for k, vals in named.items()}
    finite = [v for vals in ys.values() for v in vals if v is not None]
    if not finite or not xs:
        return ""
    lo, hi = min(finite), max(finite)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    x_lo, x_hi = min(xs), max(xs)
    span = (x_hi - x_lo) or 1.0
    left, right = _MARGIN["left"], width - _MARGIN["right"]
    top, bottom = _MARGIN["top"], height - _MARGIN["bottom"]
    body = _axes(width, height, lo, hi, _num(x_lo), _num(x_hi), x_label, y_label, log_y)
    for i, (name, vals) in enumerate(ys.items()):
        colour = PALETTE[i % len(PALETTE)]
        points = [(left + (right - left) * (xv - x_lo) / span, bottom - (bottom - top) * (yv - lo) / (hi - lo))
                  for xv, yv in zip(xs, vals) if yv is not None]
        if len(points) == 1:
            body.append(f'<circle cx="{points[0][0]:.1f}" cy="{points[0][1]:.1f}" r="3" fill="{colour}"/>')
        else:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        if name:
            body.append(_text(right - 4, top + 10 + 11 * i, name, "end", 10, colour))
    return _frame(width, height, title, body)


def bar_svg(
    labels: Sequence,
    values: Sequence[Number | None],
    *,
    title: str | None = None,
    y_label: str | None = None,
    width: int = 360,
    height: int = 150,
) -> str:
    """Vertical bars (negative values hang below zero) as an SVG string; ``""`` when empty."""
    vals = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
    if not vals:
        return ""
    lo, hi = min(0.0, *vals), max(0.0, *vals)
    if hi == lo:
        hi = lo + 1.0
    left, right = _MARGIN["left"], width - _MARGIN["right"]
    top, bottom = _MARGIN["top"], height - _MARGIN["bottom"]

    def y_of(v: Number) -> float:
        return bottom - (bottom - top) * (v - lo) / (hi - lo)

    body = _axes(width, height, lo, hi, "", "", None, y_label, False)
    step = (right - left) / len(vals)
    for i, (label, v) in enumerate(zip(labels, vals)):
        x0 = left + i * step + 0.15 * step
        y0, y1 = sorted((y_of(0.0), y_of(v)))
        body.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{0.7 * step:.1f}" height="{max(y1 - y0, 0.5):.1f}" '
                    f'fill="{PALETTE[0]}"><title>{html.escape(f"{label}: {_num(v)}")}</title></rect>')
        if len(vals) <= 16:
            body.append(_text(x0 + 0.35 * step, bottom + 12, str(label)[:8], "middle", 9))
    return _frame(width, height, title, body)


def histogram_counts(values: Sequence[float], bins: int = 12) -> tuple[list[str], list[float]]:
    """Counts of ``values`` in ``bins`` equal bins, labelled by their centres (for :func:`bar_svg`)."""
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins or 1.0
    counts = [0.0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return [f"{lo + (i + 0.5) * width:.3g}" for i in range(bins)], counts
