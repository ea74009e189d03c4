"""Shared HTML reports and notebook display for every result object.

- :mod:`interp.reports.page`: a self-contained HTML page (title, a header with the model
  and settings, sections) with one stylesheet;
- :mod:`interp.reports.tables`: escaped HTML tables and number formatting;
- :mod:`interp.reports.figures`: plotly figures embedded offline, plotly.js inlined once
  per page;
- :mod:`interp.reports.charts`: small static SVG charts for notebook summaries (no
  JavaScript, so they also show where notebooks are rendered without it, e.g. on GitHub);
- :mod:`interp.reports.notebook`: the compact ``_repr_html_`` block and short plain
  ``__repr__`` strings.

Each area keeps its own content (which numbers, which plots) and builds it from these
parts. See docs/index.md, "Notebook display".
"""

from interp.reports.charts import bar_svg, line_svg
from interp.reports.figures import figure_html, figures_html
from interp.reports.notebook import brief, clip, plain_repr, summary_html
from interp.reports.page import BASE_CSS, page, section, settings_line
from interp.reports.tables import Raw, fmt, table, token_text

__all__ = [
    "BASE_CSS",
    "Raw",
    "bar_svg",
    "brief",
    "clip",
    "figure_html",
    "figures_html",
    "fmt",
    "line_svg",
    "page",
    "plain_repr",
    "section",
    "settings_line",
    "summary_html",
    "table",
    "token_text",
]
