"""One self-contained HTML page: title, a header with the model and settings, sections.

Every report of the toolkit is a page built here, so they share one stylesheet and
one structure. Figures go in with :func:`interp.reports.figures.figures_html`, which
inlines plotly.js once, so a page opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

from interp.errors import ConfigError
from interp.reports.tables import fmt

BASE_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.4em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777}.settings{color:#555;font-size:.9em}
code{background:#f6f6f6;padding:0 3px}
"""


def settings_line(settings: Mapping[str, object]) -> str:
    """``key value; key value`` (escaped), the header line of a page or summary."""
    return "; ".join(html.escape(f"{k} {fmt(v, '.4g')}") for k, v in settings.items() if v is not None)


def section(heading: str, *parts: str, note: str | None = None, level: int = 2) -> str:
    """A heading (escaped), an optional muted note (escaped) and HTML ``parts``."""
    if level not in (2, 3, 4):
        raise ConfigError(f"section level must be 2, 3 or 4, got {level}")
    out = [f"<h{level}>{html.escape(heading)}</h{level}>"]
    if note:
        out.append(f'<p class="muted">{html.escape(note)}</p>')
    return "".join(out) + "".join(parts)


def page(
    title: str,
    sections: Iterable[str],
    *,
    model: str | None = None,
    settings: Mapping[str, object] | None = None,
    subtitle: str | None = None,
    css: str = "",
    head: str = "",
) -> str:
    """The whole HTML document.

    Args:
        title: page title and ``<h1>`` (escaped).
        sections: HTML fragments in order (see :func:`section`).
        model: the model the report is about, shown first in the header.
        settings: the settings that produced the numbers, shown as one header line.
        subtitle: one more line under the title (escaped).
        css: extra rules after the shared stylesheet.
        head: extra trusted HTML for ``<head>`` (e.g. a script).
    """
    header = []
    if model:
        header.append(f'<p class="settings">model <b>{html.escape(model)}</b></p>')
    if subtitle:
        header.append(f'<p class="muted">{html.escape(subtitle)}</p>')
    if settings:
        header.append(f'<p class="settings">{settings_line(settings)}</p>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{BASE_CSS}{css}</style>{head}</head>"
        f"<body><h1>{html.escape(title)}</h1>{''.join(header)}{''.join(sections)}</body></html>"
    )
