"""Plotly figures embedded in a page that opens offline: plotly.js is inlined once.

The first figure of a page carries the plotly.js bundle (about 3.5 MB); the others
reference it. Never a CDN link, so a saved report opens without a network.
"""

from __future__ import annotations

from collections.abc import Sequence

from interp.errors import ConfigError


def figure_html(fig, include_plotlyjs: bool = True, div_id: str | None = None) -> str:
    """One figure as an HTML fragment, with the plotly.js bundle inlined when ``include_plotlyjs``."""
    return fig.to_html(full_html=False, include_plotlyjs=bool(include_plotlyjs), div_id=div_id)


def figures_html(figures: Sequence, div_ids: Sequence[str] | None = None, include_plotlyjs: bool = True) -> str:
    """Figures one after another; the first carries plotly.js (when ``include_plotlyjs``).

    Pass ``include_plotlyjs=False`` when the page already holds the bundle.
    """
    figures = list(figures)
    if div_ids is not None and len(div_ids) != len(figures):
        raise ConfigError(f"{len(div_ids)} div ids for {len(figures)} figures")
    return "\n".join(
        figure_html(fig, include_plotlyjs and i == 0, None if div_ids is None else div_ids[i])
        for i, fig in enumerate(figures)
    )
