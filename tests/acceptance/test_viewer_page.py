"""The viewer page without a browser: what it holds, how big it is, the bundled library and its
provenance, and the notebook block that carries the library once per kernel."""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import gzip
import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from support.graphs import reference_graph

from interp.circuits import html as renderer
from interp.circuits.graph import prune

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big():
    return reference_graph()


def test_the_bundled_d3_is_the_one_its_readme_names():
    assets = resources.files("interp.circuits").joinpath("assets")
    readme = assets.joinpath("README.md").read_text()
    digest = hashlib.sha256(assets.joinpath("d3.min.js").read_bytes()).hexdigest()
    assert f"`{digest}`" in readme
    assert "d3js.org v7.9.2" in assets.joinpath("d3.min.js").read_text()[:200] and "d3` 7.9.2" in readme
    assert "ISC" in assets.joinpath("LICENSE-d3.txt").read_text()


def test_package_data_ships_every_viewer_file():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["interp.circuits"]
    package = ROOT / "interp" / "circuits"
    files = [p.relative_to(package).as_posix() for folder in ("assets", "templates") for p in (package / folder).iterdir()]
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert len(files) >= 8 and missing == []


def test_a_large_graph_page_is_small_and_holds_the_library_once(big):
    assert len(big.nodes) >= 200
    page = big.to_html()
    assert len(page.encode()) <= 1_500_000
    assert page.count(renderer.library_script()) == 1
    assert "Plotly" not in page and not re.search(r"<(?:script|link)[^>]+(?:src|href)=", page)


def test_the_page_carries_the_exact_float32_weights(big):
    data = renderer.viewer_data(big)
    adjacency = big.adjacency.numpy()
    weights = np.array([w for _, _, w in data["edges"]])
    exact = adjacency[[t for t, _, _ in data["edges"]], [s for _, s, _ in data["edges"]]]
    assert len(data["edges"]) == int((adjacency != 0).sum())
    assert np.array_equal(weights.astype(np.float32), exact)  # what Math.fround reads back on the page
    assert [n["id"] for n in data["nodes"]] == [n["node_id"] for n in big.to_json()["nodes"][: len(big.nodes)]]


def test_the_page_payload_is_the_viewer_data(big):
    page = big.to_html()
    payload = re.search(r'viewer\.mount\(element, "([A-Za-z0-9+/=]+)"\)', page).group(1)
    data = json.loads(gzip.decompress(base64.b64decode(payload)))
    expected = json.loads(json.dumps(renderer.viewer_data(big)))
    data["export"]["metadata"]["info"].pop("create_time_ms")
    expected["export"]["metadata"]["info"].pop("create_time_ms")
    assert data == expected


def test_the_notebook_block_carries_the_library_once_per_kernel(big):
    small = prune(big, 0.9, 0.9)
    renderer.resend_library()
    first, second = big._repr_html_(), small._repr_html_()
    assert renderer.library_script() in first and renderer.library_script() not in second
    assert len(second) < 60_000
    renderer.resend_library()
    assert renderer.library_script() in small._repr_html_()


@pytest.mark.slow
def test_an_executed_notebook_stays_small(tmp_path):
    """Three graphs displayed in a real kernel: the library travels in the first output only, and
    the saved notebook is a few hundred kB, not megabytes."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    setup = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from support.graphs import reference_graph\n"
        "from interp.circuits.graph import prune\n"
        "graph = reference_graph()"
    )
    cells = [nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell("graph"),
             nbformat.v4.new_code_cell("prune(graph, 0.95, 0.9)"), nbformat.v4.new_code_cell("prune(graph, 0.9, 0.9)")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    htmls = [c.outputs[0]["data"]["text/html"] for c in notebook.cells[1:]]
    library = renderer.library_script()
    assert [library in h for h in htmls] == [True, False, False]
    path = tmp_path / "graphs.ipynb"
    nbformat.write(notebook, path)
    assert path.stat().st_size < 1_000_000


def test_contexts_saved_before_they_kept_their_spaces_still_render(big):
    """Graphs saved earlier hold each context as ``(text, value)``; the page shows the text."""
    old = dataclasses.replace(big, feature_info={
        key: {**info, "contexts": [("the year[ 13]", 2.5)]} for key, info in big.feature_info.items()})
    nodes = [n for n in renderer.viewer_data(old)["nodes"] if n["kind"] == "feature"]
    assert nodes and all(n["contexts"] == [["the year[ 13]", 2.5]] for n in nodes)
