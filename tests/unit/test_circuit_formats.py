"""circuit-tracer 0.5.0's graph JSON, node by node, on hand-written graphs; its server folder;
and reading graph files (interp's, circuit-tracer's) back into a Graph. The check against
circuit-tracer's own code is tests/integration/test_circuit_tracer_interop.py."""

from __future__ import annotations

import json

import pytest
import torch
from support.graphs import chain_graph as shared_chain_graph

from interp.circuits import read_graph, write_graph_files
from interp.circuits.export import cantor_pairing, node_ids, to_json
from interp.circuits.formats import from_json
from interp.circuits.graph import Graph, Node, influence, prune
from interp.errors import ConfigError, DataError, StoreError


def chain_graph() -> Graph:
    """support.graphs' chain graph, its second token a newline (shown as a mark) and with a score."""
    g = shared_chain_graph()
    g.token_strs[1] = g.nodes[4].label = "y\n"
    g.scores = {"replacement": 0.75}
    return g


def by_id(data: dict) -> dict[str, dict]:
    return {n["node_id"]: n for n in data["nodes"]}


def test_nodes_carry_circuit_tracers_ids_types_and_labels():
    data = to_json(chain_graph(), slug="chain", scan="reference")
    nodes = by_id(data)
    assert list(nodes) == ["0_7_0", "0_3_1", "0_0_0", "E_11_0", "E_12_1", "2_5_1"]
    f, err, emb, logit = nodes["0_7_0"], nodes["0_0_0"], nodes["E_12_1"], nodes["2_5_1"]
    assert (f["feature"], f["layer"], f["ctx_idx"], f["feature_type"], f["jsNodeId"]) == (
        cantor_pairing(0, 7), "0", 0, "cross layer transcoder", "0_7-0")
    assert cantor_pairing(0, 7) == 35 and cantor_pairing(3, 2) == 17  # (x+y)(x+y+1)/2 + y
    assert (err["feature"], err["layer"], err["feature_type"], err["jsNodeId"]) == (-1, "0", "mlp reconstruction error", "0_0-0")
    assert (emb["feature"], emb["layer"], emb["jsNodeId"], emb["clerp"]) == (1, "E", "E_12-1", 'Emb: "y⏎"')
    assert logit["clerp"] == 'Output "z" (p=0.900)'
    assert (logit["feature"], logit["layer"], logit["jsNodeId"], logit["is_target_logit"]) == (5, "2", "L_5-1", True)
    assert logit["influence"] is None and logit["token_prob"] == pytest.approx(0.9)
    meta = data["metadata"]
    assert (meta["slug"], meta["scan"], meta["transcoder_list"], meta["schema_version"]) == ("chain", "reference", [], 1)
    assert meta["prompt_tokens"] == ["x", "y\n"] and meta["scores"] == {"replacement": 0.75}
    assert data["interp"]["d_vocab"] == 20


def test_influence_is_the_cumulative_share_the_viewers_prune_by():
    g = chain_graph()
    infl = influence(g.adjacency, g.logit_weights).tolist()
    nodes = by_id(to_json(g))  # not pruned: computed over the graph itself
    assert nodes["0_7_0"]["influence"] == pytest.approx(infl[0] / sum(infl), rel=1e-6)
    assert nodes["E_11_0"]["influence"] == pytest.approx((infl[0] + infl[3]) / sum(infl), rel=1e-6)
    pruned = prune(g, 0.8, 0.9)  # pruned: the shares over the full graph that prune recorded
    assert by_id(to_json(pruned))["0_7_0"]["influence"] == pytest.approx(infl[0] / sum(infl), rel=1e-6)


def test_an_error_id_that_is_a_layer_0_features_id_too_takes_the_later_form():
    g = chain_graph()
    g.nodes[0] = Node("feature", 0, 0, 3, 2.0, "a")  # layer-0 feature 3 at position 0 is "0_3_0" ...
    g.nodes[2] = Node("error", 3, 0, None, 0.01, "err")  # ... and so is 0.5.0's id of this error node
    ids = node_ids(g)
    assert ids[0] == "0_3_0" and ids[2] == "3_-1_0" and len(set(ids)) == len(ids)


def test_a_logit_difference_gets_circuit_tracers_virtual_index():
    g = chain_graph()
    g.nodes.append(Node("logit", 1, 1, None, 0.5, "later - earlier"))
    g.adjacency = torch.nn.functional.pad(g.adjacency, (0, 1, 0, 1))
    g.logit_weights = torch.tensor([0, 0, 0, 0, 0, 0.5, 0.5])
    nodes = by_id(to_json(g))
    # the second target is no single token: vocab size + its rank among the logits, as circuit-tracer's custom targets
    diff = nodes["2_21_1"]
    assert diff["feature"] == 21 and diff["clerp"] == 'Output "later - earlier" (p=0.500)' and not diff["is_target_logit"]
    back = from_json(to_json(g))
    assert [(n.index, n.label, n.prob) for n in back.nodes if n.kind == "logit"] == [(5, "z", 0.9), (None, "later - earlier", None)]


def test_json_reads_back_into_the_same_graph():
    g = prune(chain_graph(), 0.8, 0.9)
    back = from_json(to_json(g))
    strip = [(n.kind, n.layer, n.pos, n.index, n.activation, n.prob) for n in g.nodes]
    assert [(n.kind, n.layer, n.pos, n.index, n.activation, n.prob) for n in back.nodes] == strip
    assert torch.equal(back.adjacency, g.adjacency)
    assert torch.allclose(back.logit_weights, g.logit_weights)
    assert back.head_paths == g.head_paths and back.n_layers == g.n_layers
    assert (back.tokens, back.token_strs, back.prompt) == (g.tokens, g.token_strs, g.prompt)
    assert (back.node_threshold, back.edge_threshold, back.scores) == (0.8, 0.9, g.scores)
    assert [n.cumulative_influence for n in back.nodes if n.kind != "logit"] == pytest.approx(
        [n.cumulative_influence for n in g.nodes if n.kind != "logit"])
    assert back.nodes[0].label == "a"  # the clerp
    # what the file does not hold stays empty
    assert back.feature_info == {} and back.logit_directions.numel() == 0 and back.nodes[0].influence is None


def test_server_folder_holds_slug_json_and_an_index_of_every_graph(tmp_path):
    g = chain_graph()
    first = write_graph_files(g, tmp_path / "files", slug="one", scan="reference")
    assert first == {"server": tmp_path / "files" / "one.json", "metadata": tmp_path / "files" / "graph-metadata.json"}
    write_graph_files(g, tmp_path / "files", slug="two")
    g.prompt = "changed"
    write_graph_files(g, tmp_path / "files", slug="one")  # the same slug replaces its entry
    index = json.loads((tmp_path / "files" / "graph-metadata.json").read_text())
    assert [e["slug"] for e in index["graphs"]] == ["two", "one"]
    assert set(index["graphs"][0]) == {"slug", "scan", "transcoder_list", "prompt_tokens", "prompt", "node_threshold",
                                       "schema_version"}
    assert index["graphs"][1]["prompt"] == "changed"
    with pytest.raises(StoreError, match="lists 2 graphs .*pass slug="):
        read_graph(tmp_path / "files")
    assert read_graph(tmp_path / "files", slug="one").prompt == "changed"
    assert Graph.load(tmp_path / "files" / "two.json").prompt == "xy"
    with pytest.raises(StoreError, match="lists no graph 'three'"):
        read_graph(tmp_path / "files", slug="three")
    with pytest.raises(ConfigError, match="cannot name a graph file"):
        write_graph_files(g, tmp_path / "files", slug="a/b")


def test_graph_load_reads_graph_json_and_the_written_folder(tmp_path):
    g = prune(chain_graph(), 0.8, 0.9)
    paths = g.write(tmp_path / "out")
    from_file, from_folder = Graph.load(paths["json"]), Graph.load(tmp_path / "out" / "graph_files")
    for back in (from_file, from_folder):
        assert torch.equal(back.adjacency, g.adjacency) and back.head_paths == g.head_paths


def test_files_of_other_circuit_tracer_versions_and_older_interp_read():
    """Error nodes are found by feature_type (ids differ between versions); the head nodes older
    interp files kept among the nodes are read past; unknown node types are refused."""
    data = to_json(chain_graph(), include_heads=False)
    data.pop("interp")
    err = next(n for n in data["nodes"] if n["feature_type"] == "mlp reconstruction error")
    for link in data["links"]:
        link["source"] = "0_error_0" if link["source"] == err["node_id"] else link["source"]
    err["node_id"] = "0_error_0"  # the lorsa-era form
    data["nodes"].append({"node_id": "H0.1_1", "feature": 1, "layer": "0", "ctx_idx": 1, "feature_type": "attention head",
                          "jsNodeId": "H0.1-1", "clerp": ""})
    data["links"].append({"source": "0_7_0", "target": "H0.1_1", "weight": 2.5})
    back = from_json(data)
    assert [n.kind for n in back.nodes] == ["feature", "feature", "error", "embedding", "embedding", "logit"]
    assert float(back.adjacency[0, 2]) == pytest.approx(0.1)
    # without interp's record of the vocabulary size, every logit is read as the token it names
    assert back.nodes[-1].index == 5
    data["nodes"][0]["feature_type"] = "lorsa"
    with pytest.raises(DataError, match="feature_type 'lorsa'"):
        from_json(data)


def test_missing_and_broken_files_are_named(tmp_path):
    with pytest.raises(StoreError, match="no graph file"):
        read_graph(tmp_path / "none.json")
    with pytest.raises(StoreError, match="has no graph-metadata.json"):
        read_graph(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(StoreError, match="is not graph JSON"):
        read_graph(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"nodes": []}')
    with pytest.raises(DataError, match="is not attribution-graph JSON"):
        read_graph(tmp_path / "other.json")
