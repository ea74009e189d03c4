"""Attribution through cross-layer transcoders, on planted ground truth and end to end.

The planted model (tests/support/planted_clt.py) has no attention output and no norms, so its
frozen model is linear and every edge has a closed form: a layer-0 CLT feature's edge to a logit
is its activation times its total write (decoder rows into outputs 0 and 2) through the
unembedding. The CLT explains both MLPs with layer-0 features, so its graph has no layer-2
features and fewer nodes than the per-layer transcoders' graph, at a replacement score of 1
for both (neither leaves an error). The CLI traces a trained CLT run as it traces a per-layer one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from support.frozen import Frozen, edge_errors
from support.planted_clt import PLANTED_CTX, PLANTED_VOCAB, exact_clt, exact_per_layer, planted_model

from interp.circuits import AttributionConfig, TraceConfig, ablate_features, attribute, prune, token_target, trace
from interp.circuits.html import viewer_data
from interp.circuits.replacement import ReplacementModel

QUIET = AttributionConfig(progress=False)


@pytest.fixture(scope="module")
def planted():
    model, dirs = planted_model()
    tokens = torch.randint(0, PLANTED_VOCAB, (PLANTED_CTX,), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        target = int(model(tokens[None])[0, -1].argmax())
    return model, dirs, tokens, token_target(model, target)


def test_a_planted_clt_feature_writes_both_layers_into_its_edge(planted):
    model, dirs, tokens, target = planted
    clt = exact_clt(model, dirs)
    graph = attribute(model, clt, tokens, [target], QUIET)
    features = graph.index_of("feature")
    assert {graph.nodes[i].layer for i in features} == {0, 1}  # layer-2 latents never fire
    assert all(graph.nodes[i].activation < 1e-5 for i in graph.index_of("error"))  # the CLT is exact
    assert graph.scores["replacement"] == pytest.approx(1.0, abs=1e-6)
    logit = graph.index_of("logit")[0]
    direction = (model.W_U @ target.direction).detach()
    cross = []
    for i in features:
        node = graph.nodes[i]
        if node.layer != 0 or node.pos != len(tokens) - 1:  # no attention output: only the last position reaches the logit
            assert node.layer != 0 or graph.adjacency[logit, i] == 0
            continue
        act = float(node.activation)
        own, later = 2 * dirs["v0"][:, node.index] @ direction, 2 * dirs["v2"][:, node.index] @ direction
        assert float(graph.adjacency[logit, i]) == pytest.approx(act * float(own + later), rel=1e-4, abs=1e-5)
        cross.append(abs(act * float(later)) / max(abs(float(graph.adjacency[logit, i])), 1e-9))
    assert cross and max(cross) > 0.1  # the write to layer 2 is a large part of the edge
    # and every edge equals the frozen model's intervention
    frozen = Frozen(model, ReplacementModel(model, clt).transcoders, tokens)
    worst, largest = edge_errors(graph, frozen, list(range(len(graph.nodes) - 1)))
    assert worst <= 1e-4 * largest


def test_the_clt_graph_has_fewer_nodes_than_the_per_layer_one(planted):
    """Per-layer transcoders need layer-2 features for what the CLT's layer-0 features write there."""
    model, dirs, tokens, target = planted
    graphs = {name: attribute(model, tcs, tokens, [target], QUIET)
              for name, tcs in (("clt", exact_clt(model, dirs)), ("per-layer", exact_per_layer(dirs)))}
    layers = {name: {g.nodes[i].layer for i in g.index_of("feature")} for name, g in graphs.items()}
    assert layers == {"clt": {0, 1}, "per-layer": {0, 1, 2}}
    for g in graphs.values():
        assert g.scores["replacement"] == pytest.approx(1.0, abs=1e-6)
    pruned = {name: prune(g, node_threshold=1.0, edge_threshold=1.0) for name, g in graphs.items()}  # every influence
    assert len(pruned["clt"].index_of("feature")) < len(pruned["per-layer"].index_of("feature"))
    # the per-layer graph's layer-0 and layer-2 features at one position carry what one CLT feature carries
    logit = {name: g.index_of("logit")[0] for name, g in graphs.items()}
    for pos in range(len(tokens)):
        for j in range(3):
            clt_node = graphs["clt"].index_of("feature", 0, pos, j)
            if not clt_node:
                continue
            g = graphs["per-layer"]
            parts = [g.index_of("feature", layer, pos, j)[0] for layer in (0, 2)]
            total = sum(float(g.adjacency[logit["per-layer"], i]) for i in parts)
            assert float(graphs["clt"].adjacency[logit["clt"], clt_node[0]]) == pytest.approx(total, rel=1e-4, abs=1e-5)


def test_ablating_a_clt_feature_removes_its_write_to_every_layer(planted):
    model, dirs, tokens, _ = planted
    clt = exact_clt(model, dirs)
    state = ReplacementModel(model, clt).clean_state(tokens)
    pos = len(tokens) - 1
    j = int(state.acts[0][pos, :3].argmax())
    act = float(state.acts[0][pos, j])
    assert act > 0.1
    with torch.no_grad():
        clean = model(tokens[None])[0, -1]
    ablated = ablate_features(model, clt, tokens[None], [(0, pos, j)])[0, -1]
    # MLP 2 reads u, not v0: the only change is the feature's two writes, through the unembedding
    expected = (act * 2 * (dirs["v0"][:, j] + dirs["v2"][:, j]) @ model.W_U).detach()
    torch.testing.assert_close(clean - ablated, expected, atol=1e-4, rtol=1e-4)


def test_trace_describes_a_clt_feature_by_its_total_write(planted):
    model, dirs, tokens, target = planted
    clt = exact_clt(model, dirs)
    graph = trace(model, clt, tokens, target=target.token, cfg=TraceConfig(attribution=QUIET),
                  context_tokens=torch.randint(0, PLANTED_VOCAB, (4, PLANTED_CTX), generator=torch.Generator().manual_seed(4)))
    node = next(i for i in graph.index_of("feature") if graph.nodes[i].layer == 0)
    j = graph.nodes[node].index
    info = graph.feature_info[graph.node_id(node)]
    logits = (2 * (dirs["v0"][:, j] + dirs["v2"][:, j]) @ model.W_U).detach()
    assert info["top_tokens"][0][1] == pytest.approx(float(logits.max()), rel=1e-5)
    assert info["contexts"] and all(c["value"] > 0 for c in info["contexts"])
    assert info["writes_to"] == [0, 1, 2]  # the viewer's card lists the layers a CLT feature writes
    shown = {n["id"]: n for n in viewer_data(graph)["nodes"]}
    assert shown[graph.node_id(node)]["writes_to"] == [0, 1, 2]
    exported = graph.to_json()
    assert {n["feature_type"] for n in exported["nodes"] if n["node_id"] == graph.node_id(node)} == {"cross layer transcoder"}


def test_cli_traces_a_clt_run(tmp_path):
    """`interp circuit trace --transcoders RUN` on a CLT run trained here (a few thousand tokens)."""
    from importlib import resources

    import jsonschema

    from interp.models import load_model
    from interp.transcoders import TrainConfig, load_run, train

    model = load_model("reference")
    torch.set_num_threads(1)
    train(TrainConfig(model="reference", layers="0,2,3", arch="clt", k=4, expansion=1, tokens="4k", batch_size=256,
                      out=str(tmp_path / "run"), progress=False, checkpoint_every=None, device="cpu"), model=model)
    clt = load_run(tmp_path / "run")
    assert clt.layers == [0, 2, 3]
    # a CLT whose decoder stays on disk gives the same graph
    tokens = model.to_tokens("The war lasted from the year 1745 to the year 17")[0]
    target = [token_target(model, "50")]
    lazy = attribute(model, load_run(tmp_path / "run", lazy_decoder=True), tokens, target, QUIET)
    torch.testing.assert_close(lazy.adjacency, attribute(model, clt, tokens, target, QUIET).adjacency, atol=1e-5, rtol=1e-4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prompt = "The war lasted from the year 1745 to the year 17"
    done = subprocess.run([sys.executable, "-m", "interp", "circuit", "trace", "--prompt", prompt, "--transcoders",
                           str(tmp_path / "run"), "--out", str(tmp_path / "graph"), "--contexts", "4", "--target", "50",
                           "--progress", "false"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "features" in done.stdout and "graph.json" in done.stdout
    data = json.loads((tmp_path / "graph" / "graph.json").read_text())
    schema = json.loads(resources.files("interp.circuits").joinpath("schemas/attribution-graph.schema.json").read_text())
    jsonschema.validate(data, schema)
    features = [n for n in data["nodes"] if n["feature_type"] == "cross layer transcoder"]
    errors = [n for n in data["nodes"] if n["feature_type"] == "mlp reconstruction error"]
    assert features and {n["layer"] for n in features} <= {"0", "2", "3"}
    assert errors  # layer 1 has no CLT layer: its whole MLP is an error node
