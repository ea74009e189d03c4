"""Plotly figures in pages that open offline: plotly.js once per page, once per output folder.

``to_html()`` gives a self-contained page: the first figure carries the plotly.js bundle
(about 4.8 MB), the others reference it. :func:`write_page`, which ``Result.write`` uses,
writes the bundle once per folder as ``plotly.min.js`` beside the pages and has them load it
from there, so each page is its own size, not 5 MB. Never a CDN link: the folder opens
without a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from interp.errors import ConfigError

PLOTLY_FILE = "plotly.min.js"
"""The name of the plotly.js bundle that :func:`write_page` writes beside a page."""

_CONFIG = "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle of the installed ``plotly`` package."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@lru_cache(maxsize=1)
def _inline() -> str:
    return f'{_CONFIG}<script charset="utf-8" data-interp-asset="{PLOTLY_FILE}">{plotly_js()}</script>'


def _linked() -> str:
    missing = f"{PLOTLY_FILE} is missing beside this page: copy it with the page to see the plots."
    return f"""{_CONFIG}<script charset="utf-8" src="{PLOTLY_FILE}" onerror="this.insertAdjacentText('afterend', '{missing}')"></script>"""


def figure_html(fig, include_plotlyjs: bool = True, div_id: str | None = None) -> str:
    """One figure as an HTML fragment, with the plotly.js bundle inlined when ``include_plotlyjs``."""
    body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)
    return (_inline() if include_plotlyjs else "") + body


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


def write_page(path: str | Path, html: str) -> Path:
    """Write ``html`` to ``path`` (atomically). A plotly.js bundle inlined by :func:`figure_html`
    moves to ``plotly.min.js`` in the same folder, written once (and again only when it differs,
    e.g. after a plotly upgrade); the page then loads it from there. Returns ``path``."""
    from interp.io import atomic_write_text

    path = Path(path)
    bundle = _inline()
    if bundle in html:
        js = path.parent / PLOTLY_FILE
        if not (js.is_file() and js.read_text(encoding="utf-8") == plotly_js()):
            atomic_write_text(js, plotly_js())
        html = html.replace(bundle, _linked())
    atomic_write_text(path, html)
    return path
