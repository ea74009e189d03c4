"""Shared HTML reports and notebook display for every result object.

- :mod:`interp.reports.page`: a self-contained HTML page (title, a header with the model
  and settings, sections) with one stylesheet;
- :mod:`interp.reports.tables`: escaped HTML tables and number formatting;
- :mod:`interp.reports.figures`: plotly figures embedded offline, plotly.js inlined once
  per page, and written once per output folder (``plotly.min.js``) by ``write_page``;
- :mod:`interp.reports.charts`: small static SVG charts for notebook summaries (no
  JavaScript, so they also show where notebooks are rendered without it, e.g. on GitHub);
- :mod:`interp.reports.notebook`: the compact ``_repr_html_`` block and short plain
  ``__repr__`` strings;
- :mod:`interp.reports.neuron_table`: the searchable table of decoded neurons, shown by
  the neuron and the sparsity pages.

Each area keeps its own content (which numbers, which plots) and builds it from these
parts. See docs/index.md, "Notebook display".
"""

from interp.reports.charts import bar_svg, histogram_counts, line_svg
from interp.reports.figures import PLOTLY_FILE, figure_html, figures_html, write_page
from interp.reports.neuron_table import PROMOTED, SUPPRESSED, neuron_table_html
from interp.reports.notebook import brief, clip, plain_repr, summary_html
from interp.reports.page import BASE_CSS, page, section, settings_line
from interp.reports.tables import Raw, fmt, layer_numbers, layer_span, table, token_chips, token_key, token_pieces, token_text

__all__ = [
    "BASE_CSS",
    "PLOTLY_FILE",
    "PROMOTED",
    "SUPPRESSED",
    "Raw",
    "bar_svg",
    "brief",
    "clip",
    "figure_html",
    "figures_html",
    "fmt",
    "histogram_counts",
    "layer_numbers",
    "layer_span",
    "line_svg",
    "neuron_table_html",
    "page",
    "plain_repr",
    "section",
    "settings_line",
    "summary_html",
    "table",
    "token_chips",
    "token_key",
    "token_pieces",
    "token_text",
    "write_page",
]
