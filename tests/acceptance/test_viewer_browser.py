"""The attribution-graph viewer in real headless Chromium (Debian's, driven by Playwright).

On a graph of about 300 nodes traced through the reference model: no console errors, a
screenshot that is not blank, no two labels overlapping (measured in the page), a click that
highlights exactly the clicked node's edges, sliders that keep exactly the nodes and edges
``interp.circuits.prune`` keeps, the toggles, pinning, supernodes and the subgraph export.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import torch
from support.browser import browser, needs_browser, not_blank, open_page, write_page
from support.graphs import LONG_LABEL, reference_graph

from interp.circuits.graph import prune
from interp.circuits.html import to_html, viewer_data

pytestmark = [needs_browser, pytest.mark.slow]

OVERLAPS = """(root) => {
  const boxes = [...root.querySelectorAll("svg.iv-graph text")]
    .filter((t) => getComputedStyle(t).visibility !== "hidden" && getComputedStyle(t).display !== "none" && t.textContent)
    .map((t) => { const r = t.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, t.textContent]; });
  const hits = [];
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]) hits.push([a[4], b[4]]);
    }
  return {n: boxes.length, hits: hits};
}"""


@pytest.fixture(scope="module")
def big():
    graph = reference_graph()
    assert len(graph.nodes) >= 150
    return graph


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


@pytest.fixture(scope="module")
def page(big, chromium, tmp_path_factory):
    url = write_page(tmp_path_factory.mktemp("viewer") / "graph.html", to_html(big))
    page = open_page(chromium, url)
    yield page
    page.close()


def _viewer(page, call: str):
    return page.evaluate(f"() => {{ const v = document.querySelector('.iv-viewer').__interpViewer; return {call}; }}")


def _ids(graph) -> list[str]:
    return [n["id"] for n in viewer_data(graph)["nodes"]]


def _edges(graph) -> set[tuple[str, str]]:
    ids = _ids(graph)
    return {(ids[s], ids[t]) for t, s in graph.edges()}


def _set_slider(page, name: str, value: float) -> None:
    page.eval_on_selector(f"input[name={name}]", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", value)


def test_renders_without_console_errors_and_is_not_blank(page):
    assert page.problems == []
    assert page.locator(".iv-fallback").count() == 0
    assert page.evaluate("typeof window.d3") == "undefined"  # the bundled d3 stays private to the viewer
    ink, colours = not_blank(page.screenshot())
    assert ink > 0.05 and colours > 30, (ink, colours)
    assert page.locator("svg.iv-graph g.iv-node").count() > 150


def test_the_default_view_is_the_graph_as_traced(page, big):
    """Sliders at 1.0: the page shows prune(graph, 1, 1), which for a traced graph is the graph."""
    full = prune(big, 1.0, 1.0)
    assert set(_viewer(page, "v.visibleNodeIds()")) == set(_ids(full))
    assert {tuple(e) for e in _viewer(page, "v.visibleEdges()")} == _edges(full)
    assert len(full.nodes) == len(big.nodes)


@pytest.mark.parametrize("state", ["default", "heads", "pruned"])
def test_no_two_labels_overlap(page, state):
    _viewer(page, "v.setThresholds(1, 1)")
    page.locator("input[name=heads]").set_checked(state == "heads")
    if state == "pruned":
        _set_slider(page, "node-threshold", 0.97)
    measured = page.eval_on_selector(".iv-viewer", OVERLAPS)
    placed = _viewer(page, "v.labelCount")
    assert measured["hits"] == [], measured["hits"][:5]
    assert measured["n"] > 50 and placed["placed"] > 0.5 * placed["wanted"], (measured["n"], placed)
    page.locator("input[name=heads]").set_checked(False)


def test_long_labels_are_truncated_with_the_full_text_on_hover(page):
    _viewer(page, "v.setThresholds(1, 1)")
    label = page.locator("text.iv-label-logit")
    assert label.count() == 1
    text = label.evaluate("t => t.firstChild.nodeValue")
    title = label.locator("title").text_content()
    assert text.endswith("\u2026") and len(text) < len(LONG_LABEL)
    assert title.startswith(LONG_LABEL) and title.startswith(text[:-1])


def test_a_click_highlights_exactly_the_nodes_edges(page, big):
    _viewer(page, "v.setThresholds(1, 1)")
    ids = _ids(big)
    adjacency = big.adjacency
    # the feature with the most edges, in and out
    degree = (adjacency != 0).sum(0) + (adjacency != 0).sum(1)
    features = [i for i, n in enumerate(big.nodes) if n.kind == "feature"]
    i = max(features, key=lambda i: int(degree[i]))
    page.locator(f'g.iv-node[data-id="{ids[i]}"]').click()
    got = set(page.eval_on_selector_all("path.iv-edge.iv-hl", "els => els.map(e => e.dataset.source + '>' + e.dataset.target)"))
    expected = {f"{ids[s]}>{ids[i]}" for s in torch.nonzero(adjacency[i]).flatten().tolist()}
    expected |= {f"{ids[i]}>{ids[t]}" for t in torch.nonzero(adjacency[:, i]).flatten().tolist()}
    assert got == expected and len(got) == int(degree[i])
    # the card: activation, decoder tokens, contexts with their spaces and the firing token marked
    card = page.locator(".iv-card")
    assert ids[i] in card.text_content() and f"{big.nodes[i].activation:.3f}" in card.text_content()
    info = big.feature_info[big.node_id(i)]
    assert card.locator(".iv-chips code").all_text_contents() == [t for t, _ in info["top_tokens"]]
    marks = card.locator(".iv-contexts mark").all_text_contents()
    assert marks == [c["token"].lstrip() for c in info["contexts"]]
    first = card.locator(".iv-contexts li").first.text_content()
    assert first.startswith(info["contexts"][0]["before"] + info["contexts"][0]["token"])
    assert " " in info["contexts"][0]["before"]  # words keep their spaces
    page.locator(f'g.iv-node[data-id="{ids[i]}"]').click()  # a second click clears it
    assert page.locator("path.iv-edge.iv-hl").count() == 0


@pytest.mark.parametrize("node_threshold,edge_threshold", [(0.5, 0.9), (0.9, 1.0), (0.95, 0.9), (0.97, 1.0), (0.98, 0.9), (0.99, 0.95)])
def test_the_sliders_prune_as_prune_does(page, big, node_threshold, edge_threshold):
    _set_slider(page, "node-threshold", node_threshold)
    _set_slider(page, "edge-threshold", edge_threshold)
    pruned = prune(big, node_threshold, edge_threshold)
    visible = _viewer(page, "v.visibleNodeIds()")
    assert sorted(visible) == sorted(_ids(pruned))
    assert {tuple(e) for e in _viewer(page, "v.visibleEdges()")} == _edges(pruned)
    assert page.locator("svg.iv-graph g.iv-node").count() == len(pruned.nodes)
    assert page.locator(".iv-counts").text_content().startswith(f"{len(pruned.nodes)} nodes")
    _viewer(page, "v.setThresholds(1, 1)")


def test_toggles_hide_error_nodes_and_show_head_paths(page, big):
    _viewer(page, "v.setThresholds(1, 1)")
    ids = _ids(big)
    page.locator("input[name=errors]").set_checked(False)
    shown = set(_viewer(page, "v.visibleNodeIds()"))
    assert shown == {ids[i] for i, n in enumerate(big.nodes) if n.kind != "error"}
    assert page.locator("g.iv-node.iv-error").count() == 0
    page.locator("input[name=errors]").set_checked(True)
    assert page.locator("g.iv-node.iv-error").count() == sum(n.kind == "error" for n in big.nodes)
    assert page.locator("g.iv-node.iv-head").count() == 0
    page.locator("input[name=heads]").set_checked(True)
    heads = {(p.layer, p.head, p.query) for p in big.head_paths}
    assert page.locator("g.iv-node.iv-head").count() == len(heads)
    assert page.locator("path.iv-headlink").count() > 0
    page.locator("input[name=heads]").set_checked(False)
    assert page.problems == []


def test_pin_group_and_export_the_subgraph(page, big):
    _viewer(page, "v.setThresholds(1, 1)")
    ids = _ids(big)
    logit = big.index_of("logit")[0]
    sources = sorted(torch.nonzero(big.adjacency[logit]).flatten().tolist(), key=lambda s: -abs(float(big.adjacency[logit, s])))
    chosen = [ids[logit], ids[sources[0]], ids[sources[1]]]
    for nid in chosen:
        page.locator(f'g.iv-node[data-id="{nid}"]').click(modifiers=["Shift"])
    assert page.locator("g.iv-node.iv-pinned").count() == 3
    boxes = page.locator(".iv-pinned-list input.iv-select")
    boxes.nth(1).check()
    boxes.nth(2).check()
    page.locator("input[name=supernode-name]").fill("strongest inputs")
    page.locator(".iv-group-btn").click()
    # the drawn subgraph: the supernode is one box under its name, beside the pinned logit
    assert page.locator(".iv-sub-super text").all_text_contents() == ["strongest inputs"]
    assert page.locator(".iv-sub-node").count() == 2 and page.locator(".iv-sub-link").count() >= 1
    with page.expect_download() as download:
        page.locator(".iv-export-btn").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data == json.loads(page.locator(".iv-export-text").input_value())
    # circuit-tracer's graph-file form (its QParams fields), valid against the Neuronpedia schema
    schema = json.loads(resources.files("interp.circuits").joinpath("schemas/attribution-graph.schema.json").read_text())
    jsonschema.validate(data, schema)
    assert set(data["qParams"]) == {"pinnedIds", "supernodes", "linkType", "clickedId", "sg_pos"}
    assert data["qParams"]["pinnedIds"] == chosen
    assert data["qParams"]["supernodes"] == [["strongest inputs", chosen[1], chosen[2]]]
    assert [n["node_id"] for n in data["nodes"]] == chosen
    index = {nid: i for i, nid in enumerate(ids)}
    expected = {(s, t): float(big.adjacency[index[t], index[s]]) for s in chosen for t in chosen if big.adjacency[index[t], index[s]] != 0}
    assert {(link["source"], link["target"]): link["weight"] for link in data["links"]} == pytest.approx(expected)
    assert len(expected) >= 2
    for nid in chosen:  # unpin all again
        page.locator(f'g.iv-node[data-id="{nid}"]').click(modifiers=["Shift"])
    assert page.locator("g.iv-node.iv-pinned").count() == 0 and page.problems == []


def test_the_notebook_block_loads_the_library_once(big, chromium, tmp_path):
    """Two graphs displayed in one notebook page: the first output carries the library, the
    second only its data, and both viewers mount; an output whose library is gone says so."""
    from interp.circuits import html as renderer

    renderer.resend_library()
    first, second = big._repr_html_(), prune(big, 0.5, 0.9)._repr_html_()
    assert renderer.library_script() in first and renderer.library_script() not in second
    assert len(second) < len(first) - 100_000
    url = write_page(tmp_path / "notebook.html", f"<html><body>{first}{second}</body></html>")
    page = open_page(chromium, url, wait_for=None)
    page.wait_for_function("document.querySelectorAll('[data-viewer-ready=\"1\"]').length === 2", timeout=15_000)
    assert page.problems == []
    page.close()
    alone = write_page(tmp_path / "alone.html", f"<html><body>{second}</body></html>")
    page = open_page(chromium, alone, wait_for=None)
    page.wait_for_function("document.querySelector('.iv-fallback').textContent.includes('resend_library')", timeout=15_000)
    assert page.problems == []
    page.close()


def test_the_full_graph_pruned_on_the_page_is_the_traced_graph(chromium, tmp_path):
    """The planted circuit's unpruned graph (no influences recorded, zero error nodes): the page
    draws it, and its sliders at trace's default thresholds keep exactly what trace kept."""
    from interp.circuits.attribution import AttributionConfig, attribute, token_target
    from interp.circuits.planted import planted_circuit
    from interp.circuits.tracing import trace
    from interp.transcoders.loading import for_model

    pc = planted_circuit()
    full = attribute(pc.model, for_model(pc.model, pc.transcoders), pc.prompt,
                     [token_target(pc.model, pc.target_token)], AttributionConfig(progress=False))
    traced = trace(pc.model, pc.transcoders, pc.prompt, target=pc.target_token)
    page = open_page(chromium, write_page(tmp_path / "full.html", to_html(full)))
    assert page.locator("svg.iv-graph g.iv-node").count() == len(prune(full, 1.0, 1.0).nodes)
    _set_slider(page, "node-threshold", 0.8)
    _set_slider(page, "edge-threshold", 0.98)
    assert sorted(_viewer(page, "v.visibleNodeIds()")) == sorted(_ids(traced))
    assert {tuple(e) for e in _viewer(page, "v.visibleEdges()")} == _edges(traced)
    assert page.problems == []
    page.close()
