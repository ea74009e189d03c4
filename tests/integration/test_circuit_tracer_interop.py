"""circuit-tracer 0.5.0's own code reads what interp writes: its pydantic graph model validates a
traced graph, its local server serves the graph_files/ folder, its ``create_graph_files`` run
on interp's full graph writes the same nodes, influences, labels and links as interp's export,
and its default target selection picks the same logits as interp's. circuit-tracer is
installed without its dependencies (torch, transformers and pydantic come from the system's
packages) into a virtual environment this test builds; skipped, with the reason, where that
cannot be done. interp's JSON Schema (interp/circuits/schemas, a copy of the viewer's) is the
other check."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import resources

import jsonschema
import pytest
import torch

from interp.circuits import AttributionConfig, TraceConfig, attribute, prune, read_graph, trace
from interp.circuits.export import to_json
from interp.circuits.tracing import prompt_tokens, salient_targets

CIRCUIT_TRACER = "circuit-tracer==0.5.0"
PROMPT = "The war lasted from the year 1745 to the year 17"

SCRIPT = textwrap.dedent("""
    import json, socket, sys, urllib.request
    from pathlib import Path

    import torch
    from transformers import AutoTokenizer

    from circuit_tracer.attribution.targets import AttributionTargets, LogitTarget
    from circuit_tracer.frontend.graph_models import Metadata, Model
    from circuit_tracer.frontend.local_server import serve
    from circuit_tracer.graph import Graph
    from circuit_tracer.utils.create_graph_files import create_graph_files
    from circuit_tracer.utils.tl_nnsight_mapping import UnifiedConfig

    written, inputs, work = Path(sys.argv[1]), torch.load(sys.argv[2]), Path(sys.argv[3])
    report = {}

    # 1. the pydantic graph model validates graph.json and the served copy, and dumps them unchanged
    for name in ("graph.json", "graph_files/graph.json"):
        data = json.loads((written / name).read_text())
        dumped = Model.model_validate(data).model_dump()
        report[name] = {"nodes": len(dumped["nodes"]), "same_nodes": dumped["nodes"] == data["nodes"],
                        "same_links": dumped["links"] == data["links"]}
    index = json.loads((written / "graph_files/graph-metadata.json").read_text())
    report["index"] = [Metadata.model_validate(entry).model_dump() == entry for entry in index["graphs"]]

    # 2. its local server serves the folder: the index, the graph and its own front end
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    server = serve(data_dir=str(written / "graph_files"), port=port)
    try:
        get = lambda path: urllib.request.urlopen(f"http://localhost:{port}{path}", timeout=30).read()
        report["served_index"] = get("/data/graph-metadata.json") == (written / "graph_files/graph-metadata.json").read_bytes()
        report["served_graph"] = get("/graph_data/graph.json") == (written / "graph_files/graph.json").read_bytes()
        report["served_page"] = b"./data/graph-metadata.json" in get("/index.html")  # what its page fetches
    finally:
        server.stop()

    # 3. circuit-tracer's own graph files from interp's full graph
    cfg = UnifiedConfig(tokenizer_name=inputs["tokenizer"], model_name="reference", original_architecture="reference",
                        **inputs["cfg"])
    tokenizer = AutoTokenizer.from_pretrained(inputs["tokenizer"])
    graph = Graph(
        input_string=inputs["prompt"], input_tokens=inputs["tokens"], active_features=inputs["active_features"],
        adjacency_matrix=inputs["adjacency"], cfg=cfg, selected_features=torch.arange(len(inputs["active_features"])),
        activation_values=inputs["activations"],
        logit_targets=[LogitTarget(token_str=tokenizer.decode(t), vocab_idx=t) for t in inputs["logit_tokens"]],
        logit_probabilities=inputs["logit_probs"], scan="reference",
    )
    create_graph_files(graph, slug="ct", output_path=str(work / "ct"), node_threshold=0.8, edge_threshold=0.98)

    # 4. circuit-tracer's default targets for the same last-position logits
    targets = AttributionTargets(None, inputs["last_logits"], inputs["W_U"], tokenizer)
    report["salient"] = [t.vocab_idx for t in targets.logit_targets]
    print(json.dumps(report))
""")


@pytest.fixture(scope="module")
def ct_python(tmp_path_factory):
    """The python of a virtual environment with circuit-tracer installed (no dependencies)."""
    venv = tmp_path_factory.mktemp("circuit-tracer-venv")
    steps = [
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", CIRCUIT_TRACER],
    ]
    for step in steps:
        done = subprocess.run(step, check=False, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            pytest.skip(f"cannot build a virtual environment with {CIRCUIT_TRACER}: {' '.join(step[:3])}... failed: {reason[0]}")
    modules = "circuit_tracer.frontend.graph_models, circuit_tracer.utils.create_graph_files, circuit_tracer.graph"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {modules}"], check=False, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"{CIRCUIT_TRACER} installed without dependencies cannot import its graph modules here: "
                    f"{done.stderr.strip().splitlines()[-1]}")
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A random reference-shaped model whose next token is uncertain (several salient logits),
    random TopK transcoders at every layer, and the reference tokenizer saved where
    ``AutoTokenizer.from_pretrained`` finds it offline."""
    from interp.reference.model import architecture, build
    from interp.reference.tokenizer import build_tokenizer
    from interp.transcoders import registry

    tok = build_tokenizer()
    model = build(architecture(len(tok)), tok, seed=3)
    arch = registry.get("topk")
    d = model.cfg.d_model
    tcs = {layer: arch.transcoder(arch.config(d_in=d, d_out=d, d_sae=256, k=8), seed=layer)
           for layer in range(model.cfg.n_layers)}
    folder = tmp_path_factory.mktemp("tokenizer")
    tok.save_pretrained(folder)
    return model, tcs, folder


def test_circuit_tracers_model_validates_a_traced_graph_and_its_server_serves_the_folder(ct_python, setup, tmp_path):
    model, tcs, tokenizer_dir = setup
    cfg = TraceConfig(attribution=AttributionConfig(progress=False))
    graph = trace(model, tcs, PROMPT, cfg=cfg, model_name="reference")  # no target: circuit-tracer's salient logits
    logits = graph.index_of("logit")
    assert len(logits) > 1 and graph.head_paths  # several targets; head paths to keep out of the core graph
    paths = graph.write(tmp_path / "graph")

    # the same computation by hand, unpruned, for circuit-tracer's create_graph_files
    tokens = prompt_tokens(model, PROMPT)
    targets = salient_targets(model, tokens)
    full = attribute(model, tcs, tokens, targets, cfg.attribution, prompt=PROMPT)
    assert [n.index for n in full.nodes if n.kind == "logit"] == [graph.nodes[i].index for i in logits]
    feats = [n for n in full.nodes if n.kind == "feature"]
    with torch.no_grad():
        last = model(tokens[None])[0, -1]
    torch.save({
        "prompt": PROMPT, "tokens": tokens, "tokenizer": str(tokenizer_dir),
        "cfg": {k: getattr(model.cfg, k) for k in ("n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab")},
        "active_features": torch.tensor([[n.layer, n.pos, n.index] for n in feats]),
        "activations": torch.tensor([n.activation for n in feats]),
        "adjacency": full.adjacency, "logit_tokens": [t.token for t in targets],
        "logit_probs": torch.tensor([n.prob for n in full.nodes if n.kind == "logit"]),
        "last_logits": last, "W_U": model.W_U.detach(),
    }, tmp_path / "inputs.pt")  # fmt: skip
    done = subprocess.run([str(ct_python), "-c", SCRIPT, str(tmp_path / "graph"), str(tmp_path / "inputs.pt"), str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    # circuit-tracer's pydantic model accepts both files and changes nothing in them
    data = json.loads(paths["json"].read_text())
    for name in ("graph.json", "graph_files/graph.json"):
        assert report[name] == {"nodes": len(data["nodes"]), "same_nodes": True, "same_links": True}, name
    assert report["index"] == [True]
    assert report["served_index"] and report["served_graph"] and report["served_page"]
    # interp's JSON Schema, the other check
    schema = json.loads(resources.files("interp.circuits").joinpath("schemas/attribution-graph.schema.json").read_text())
    jsonschema.validate(data, schema)
    assert data["interp"]["head_paths"] and not {n["feature_type"] for n in data["nodes"]} - {
        "cross layer transcoder", "mlp reconstruction error", "embedding", "logit"}

    # circuit-tracer picks the same default targets
    assert report["salient"] == [t.token for t in targets]

    # circuit-tracer's own files for the same full graph: the same nodes, fields, labels, influences and links
    theirs = json.loads((tmp_path / "ct" / "ct.json").read_text())
    ours = to_json(prune(full, 0.8, 0.98), slug="ct", scan="reference")
    assert [n["node_id"] for n in ours["nodes"]] == [n["node_id"] for n in data["nodes"]]  # trace prunes so too
    mine, ct = {n["node_id"]: n for n in ours["nodes"]}, {n["node_id"]: n for n in theirs["nodes"]}
    assert set(mine) == set(ct) and len(mine) > 20
    for nid, node in ct.items():
        for key in ("feature", "layer", "ctx_idx", "feature_type", "jsNodeId", "is_target_logit", "run_idx", "reverse_ctx_idx"):
            assert mine[nid][key] == node[key], (nid, key)
        assert mine[nid]["token_prob"] == pytest.approx(node["token_prob"], rel=1e-5), nid
        if node["influence"] is not None:
            assert mine[nid]["influence"] == pytest.approx(node["influence"], rel=1e-4, abs=1e-6), nid
        if node["feature_type"] in ("cross layer transcoder",):
            assert mine[nid]["activation"] == pytest.approx(node["activation"], rel=1e-5), nid
        if node["feature_type"] == "logit":
            assert mine[nid]["clerp"] == node["clerp"], nid
    links = {(link["source"], link["target"]): link["weight"] for link in theirs["links"]}
    assert {(link["source"], link["target"]) for link in ours["links"]} == set(links)
    for link in ours["links"]:
        assert link["weight"] == pytest.approx(links[link["source"], link["target"]], rel=1e-5, abs=1e-7)
    assert ours["metadata"]["prompt_tokens"] == theirs["metadata"]["prompt_tokens"]
    their_index = json.loads((tmp_path / "ct" / "graph-metadata.json").read_text())
    our_index = json.loads(paths["metadata"].read_text())
    assert set(their_index["graphs"][0]) == set(our_index["graphs"][0])

    # and circuit-tracer's files read back into a Graph with the same edges as interp's
    back = read_graph(tmp_path / "ct", d_vocab=model.cfg.d_vocab)
    ours_back = read_graph(paths["json"])
    assert len(back.nodes) == len(ours_back.nodes) and len(back.edges()) == len(ours_back.edges())
    assert [n.index for n in back.nodes if n.kind == "logit"] == [t.token for t in targets]
    assert back.n_layers == model.cfg.n_layers and back.tokens == tokens.tolist()


PIN_SOME = """() => {
  const v = document.querySelector('.iv-viewer').__interpViewer, of = (k) => v.g.nodes.filter(n => n.kind === k);
  const pinned = [of('logit')[0], of('error')[0], of('embedding')[0], ...of('feature').slice(0, 4)].filter(n => n);
  pinned.forEach(n => v.pin(n.id));
  v.group([pinned[3].id, pinned[4].id], 'two features');
  v.click(pinned[5].id);
  return pinned.map(n => n.id);
}"""


def test_circuit_tracers_model_reads_the_viewers_subgraph_export(ct_python, setup, tmp_path):
    """The viewer's "export subgraph JSON" (pinned nodes, a supernode, the clicked node) is a
    graph file circuit-tracer's pydantic model validates and dumps back unchanged."""
    from support.browser import CHROMIUM, browser, open_page, sync_playwright, write_page

    if CHROMIUM is None or sync_playwright is None:
        pytest.skip("needs Playwright (pip install -e '.[dev]') and a chromium binary (apt-get install -y chromium)")
    model, tcs, _ = setup
    graph = trace(model, tcs, PROMPT, cfg=TraceConfig(attribution=AttributionConfig(progress=False)))
    with browser() as b:
        page = open_page(b, write_page(tmp_path / "graph.html", graph.to_html()))
        pinned = page.evaluate(PIN_SOME)
        exported = page.locator(".iv-export-text").input_value()
        assert page.problems == []
    (tmp_path / "subgraph.json").write_text(exported)
    check = ("import json, sys; from circuit_tracer.frontend.graph_models import Model; d = json.load(open(sys.argv[1])); "
             "m = Model.model_validate(d).model_dump(); print(json.dumps([m[k] == d[k] for k in ('nodes', 'links', 'qParams')]))")
    done = subprocess.run([str(ct_python), "-c", check, str(tmp_path / "subgraph.json")], check=False,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [True, True, True]
    data = json.loads(exported)
    assert data["qParams"]["pinnedIds"] == pinned and data["qParams"]["clickedId"] == pinned[5]
    assert data["qParams"]["supernodes"] == [["two features", pinned[3], pinned[4]]]


def test_circuit_tracers_model_validates_a_graph_traced_through_a_clt(ct_python, setup, tmp_path):
    """A graph through a cross-layer transcoder: features are "cross layer transcoder" nodes, as
    circuit-tracer writes a CLT's, and its pydantic model validates the file and dumps it unchanged."""
    from interp.transcoders import registry

    model, _, _ = setup
    arch = registry.get("clt")
    d, L = model.cfg.d_model, model.cfg.n_layers
    clt = arch.transcoder(arch.config(d_in=d, d_out=d, d_sae=128, n_layers=L, k=8), seed=0)
    graph = trace(model, clt, PROMPT, cfg=TraceConfig(attribution=AttributionConfig(progress=False)), model_name="reference")
    graph.write(tmp_path / "graph")
    data = json.loads((tmp_path / "graph" / "graph.json").read_text())
    features = [n for n in data["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert features and {n["layer"] for n in features} != {"0"}  # features of several layers
    check = ("import json, sys; from circuit_tracer.frontend.graph_models import Model; d = json.load(open(sys.argv[1])); "
             "m = Model.model_validate(d).model_dump(); print(json.dumps([m[k] == d[k] for k in ('nodes', 'links', 'qParams')]))")
    done = subprocess.run([str(ct_python), "-c", check, str(tmp_path / "graph" / "graph.json")], check=False,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [True, True, True]
