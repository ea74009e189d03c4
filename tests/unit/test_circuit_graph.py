"""Graph data, pruning, scores and exports on hand-written graphs."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import networkx as nx
import pytest
import torch
from support.graphs import chain_graph

from interp.circuits.export import to_json, write_graphml
from interp.circuits.graph import Graph, graph_scores, influence, prune
from interp.errors import StoreError


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine torch's thread pool mostly waits."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def test_influence_sums_paths():
    g = chain_graph()
    infl = influence(g.adjacency, g.logit_weights)
    # a gets 3/3.05 of the logit's row; tok0 gets that times 4/4.1
    assert infl[0] == pytest.approx(3 / 3.05, rel=1e-5)
    assert infl[3] == pytest.approx(3 / 3.05 * 4 / 4.1, rel=1e-5)
    assert infl[5] == 0


def test_prune_keeps_strong_path_and_drops_weak_one():
    g = prune(chain_graph(), node_threshold=0.8, edge_threshold=0.9)
    kinds = [(n.kind, n.label) for n in g.nodes]
    assert ("feature", "a") in kinds and ("feature", "b") not in kinds and ("error", "err") not in kinds
    # embeddings and logits always stay
    assert sum(k == "embedding" for k, _ in kinds) == 2 and sum(k == "logit" for k, _ in kinds) == 1
    ids = {(g.node_id(s), g.node_id(t)) for t, s in g.edges()}
    assert ids == {("E_11_0", "0_7_0"), ("0_7_0", "2_5_1")}
    assert len(g.head_paths) == 1 and g.nodes[g.head_paths[0].source].label == "a"


def test_prune_rejects_bad_thresholds():
    with pytest.raises(ValueError, match="node_threshold"):
        prune(chain_graph(), node_threshold=1.5)


def test_scores_count_error_influence():
    g = chain_graph()
    s = graph_scores(g)
    assert 0.9 < s["replacement"] < 1.0
    assert 0.9 < s["completeness"] < 1.0
    g.adjacency[0, 2] = 0.0  # no error input at all
    assert graph_scores(g)["replacement"] == pytest.approx(1.0)


def test_save_load_round_trip(tmp_path):
    g = chain_graph()
    g.scores = {"replacement": 0.5}
    g.feature_info = {"0_7_0": {"top_tokens": [("z", 1.0)], "contexts": []}}
    path = g.save(tmp_path / "g.pt")
    h = Graph.load(path)
    assert torch.equal(h.adjacency, g.adjacency)
    assert h.nodes == g.nodes and h.head_paths == g.head_paths and h.scores == g.scores
    assert h.feature_info["0_7_0"]["top_tokens"][0][0] == "z"


def test_load_reports_missing_and_bad_files(tmp_path):
    with pytest.raises(StoreError, match="no graph file"):
        Graph.load(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_text("not a graph")
    with pytest.raises(StoreError, match="not a graph"):
        Graph.load(tmp_path / "bad.pt")


def test_json_validates_against_viewer_schema_and_ids_are_unique():
    schema = json.loads(resources.files("interp.circuits").joinpath("schemas/attribution-graph.schema.json").read_text())
    data = to_json(chain_graph())
    jsonschema.validate(data, schema)
    ids = [n["node_id"] for n in data["nodes"]]
    assert len(ids) == len(set(ids))
    assert {n["feature_type"] for n in data["nodes"]} >= {"embedding", "logit", "mlp reconstruction error"}
    logit = next(n for n in data["nodes"] if n["feature_type"] == "logit")
    assert logit["is_target_logit"] and logit["token_prob"] == pytest.approx(0.9) and logit["layer"] == "2"
    # head paths are kept beside the core graph, not as nodes circuit-tracer does not know
    assert not any(n["feature_type"] == "attention head" for n in data["nodes"])
    assert data["interp"]["head_paths"] == [
        {"source": "0_7_0", "target": "2_5_1", "layer": 0, "head": 1, "query": 1, "weight": 2.5}
    ]
    known = set(ids)
    assert all(l["source"] in known and l["target"] in known for l in data["links"])


def test_schema_rejects_a_broken_export():
    schema = json.loads(resources.files("interp.circuits").joinpath("schemas/attribution-graph.schema.json").read_text())
    data = to_json(chain_graph())
    del data["nodes"][0]["jsNodeId"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_graphml_round_trips_through_networkx(tmp_path):
    g = chain_graph()
    path = write_graphml(g, tmp_path / "g.graphml")
    h = nx.read_graphml(path)
    assert h.has_edge("E_11_0", "0_7_0")
    assert h.edges["0_7_0", "2_5_1"]["weight"] == pytest.approx(3.0)
    assert h.nodes["0_7_0"]["feature_type"] == "cross layer transcoder"
    # GraphML keeps the head as a node between the source and the target it carries
    assert h.nodes["H0.1_1"]["feature_type"] == "attention head"
    assert h.edges["0_7_0", "H0.1_1"]["weight"] == pytest.approx(2.5) and h.has_edge("H0.1_1", "2_5_1")


def test_graph_is_a_result_whose_summary_gives_counts_scores_and_time():
    from interp.results import Result

    g = chain_graph()
    g.scores = {"replacement": 0.5}
    g.seconds = 1.25
    assert isinstance(g, Result) and g.stem == "graph"
    first, second = g.summary().splitlines()
    assert first == ("Graph of 'xy': 2 features, 1 error nodes, 2 tokens, 1 logits, 5 edges, 1 head paths; "
                     "replacement 0.500")
    assert second == "attribution (edge matrix) took 1.25 s"


def test_write_puts_every_export_in_the_directory(tmp_path):
    from interp.circuits import write_all

    g = chain_graph()
    paths = g.write(tmp_path / "out")
    assert list(paths) == ["json", "graphml", "html", "graph", "server", "metadata"]
    assert [p.relative_to(tmp_path / "out").as_posix() for p in paths.values()] == [
        "graph.json", "graph.graphml", "graph.html", "graph.pt", "graph_files/graph.json", "graph_files/graph-metadata.json"
    ]
    assert all(p.is_file() for p in paths.values())
    assert json.loads(paths["server"].read_text())["nodes"] == json.loads(paths["json"].read_text())["nodes"]
    schema = json.loads(resources.files("interp.circuits").joinpath("schemas/attribution-graph.schema.json").read_text())
    data = json.loads(paths["json"].read_text())
    jsonschema.validate(data, schema)
    assert data["metadata"]["slug"] == "graph"
    assert nx.read_graphml(paths["graphml"]).has_edge("E_11_0", "0_7_0")
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    back = Graph.load(paths["graph"])
    assert back.nodes == g.nodes and torch.equal(back.adjacency, g.adjacency)
    # write_all is the same call under its old name, with a stem
    again = write_all(g, tmp_path / "again", stem="g2")
    assert {p.name for p in again.values()} == {"g2.json", "g2.graphml", "g2.html", "g2.pt", "graph-metadata.json"}
    assert json.loads(again["json"].read_text())["nodes"] == data["nodes"]


def test_the_page_is_rendered_in_circuits_html():
    from interp.circuits import html as renderers
    from interp.circuits import to_html

    assert to_html is renderers.to_html
    page = chain_graph().to_html()
    has_plot = "interpViewerLibrary" in page  # booleans first: a failed assert would diff the whole page
    assert page.startswith("<!DOCTYPE html>") and has_plot and "Attribution graph: xy" in page and "0_7_0" in page


def test_prune_records_each_nodes_cumulative_influence_over_the_full_graph():
    """circuit-tracer's node ``influence``: sort the full graph's influences, cumulate, divide by the total."""
    g = chain_graph()
    infl = influence(g.adjacency, g.logit_weights).tolist()
    total = sum(infl)
    pruned = prune(g, node_threshold=0.8, edge_threshold=0.9)
    got = {(n.kind, n.label): n.cumulative_influence for n in pruned.nodes}
    # by hand: f_a (index 0) is the most influential node, then tok0 (index 3)
    assert got[("feature", "a")] == pytest.approx(infl[0] / total, rel=1e-6)
    assert got[("embedding", "x")] == pytest.approx((infl[0] + infl[3]) / total, rel=1e-6)
    assert got[("logit", "z")] == pytest.approx(1.0)  # no influence of its own: last in the order
    assert all(n.influence is not None for n in pruned.nodes)
