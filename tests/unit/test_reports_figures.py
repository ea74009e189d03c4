"""plotly.js once per page in ``to_html()``, once per output folder in ``Result.write``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import plotly.graph_objects as go
import pytest

from interp.reports import PLOTLY_FILE, figures_html, page, write_page
from interp.reports.figures import plotly_js
from interp.results import Result


@dataclass
class Plotted(Result):
    stem: ClassVar[str] = "plotted"
    values: list[float]

    def to_html(self) -> str:
        figures = [go.Figure(go.Scatter(y=self.values)), go.Figure(go.Bar(y=self.values))]
        return page("plotted", [figures_html(figures)])


@dataclass
class Plain(Result):
    stem: ClassVar[str] = "plain"
    value: float

    def to_html(self) -> str:
        return page("plain", [f"<p>{self.value}</p>"])


def test_to_html_inlines_the_bundle_once():
    html = Plotted([1.0, 2.0]).to_html()
    assert html.count(plotly_js()) == 1 and html.count("Plotly.newPlot") == 2
    assert f'src="{PLOTLY_FILE}"' not in html


def test_write_puts_plotly_once_beside_the_pages(tmp_path):
    a = Plotted([1.0, 2.0]).write(tmp_path)
    js = tmp_path / PLOTLY_FILE
    assert js.read_text(encoding="utf-8") == plotly_js()
    first = js.stat().st_mtime_ns
    elsewhere = Plotted([3.0]).write(tmp_path / "sub")["html"]  # another folder gets its own copy
    assert (elsewhere.parent / PLOTLY_FILE).is_file()
    os.utime(js, ns=(first - 10**9, first - 10**9))
    Plotted([5.0]).write(tmp_path)  # same folder: the bundle is not written again
    assert js.stat().st_mtime_ns == first - 10**9
    for html in (a["html"], tmp_path / "plotted.html"):
        text = html.read_text()
        assert plotly_js()[:2000] not in text and text.count(f'src="{PLOTLY_FILE}"') == 1
        assert text.count("Plotly.newPlot") == 2 and len(text.encode()) < 100_000
    assert set(a) == {"json", "html"}


def test_a_stale_bundle_is_replaced_and_pages_without_plots_need_none(tmp_path):
    (tmp_path / PLOTLY_FILE).write_text("an older plotly.js")
    Plotted([1.0]).write(tmp_path)
    assert (tmp_path / PLOTLY_FILE).read_text(encoding="utf-8") == plotly_js()
    other = tmp_path / "other"
    Plain(1.0).write(other)
    assert not (other / PLOTLY_FILE).exists() and (other / "plain.html").is_file()


def test_write_page_leaves_pages_without_the_bundle_alone(tmp_path):
    path = write_page(tmp_path / "x.html", "<p>no plots</p>")
    assert path.read_text() == "<p>no plots</p>" and not (tmp_path / PLOTLY_FILE).exists()


@pytest.mark.slow
def test_a_written_page_draws_its_plots_offline(tmp_path):
    from support.browser import browser, needs_browser, open_page

    if needs_browser.args[0]:
        pytest.skip(needs_browser.kwargs["reason"])
    paths = Plotted([1.0, 3.0, 2.0]).write(tmp_path)
    with browser() as b:
        shown = open_page(b, paths["html"].as_uri(), wait_for=".main-svg")
        assert shown.locator(".js-plotly-plot .main-svg").count() >= 2 and shown.problems == []
        (tmp_path / PLOTLY_FILE).unlink()
        missing = open_page(b, paths["html"].as_uri(), wait_for=None)
        assert "plotly.min.js is missing beside this page" in missing.locator("body").text_content()
