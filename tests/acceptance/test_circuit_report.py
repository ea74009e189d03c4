"""The circuit page end to end: CLI -> JSON (schema-valid), GraphML, a self-contained HTML
page; ``interp.circuits.run`` and its flags. The page in a browser: test_viewer_browser.py."""

from __future__ import annotations

import json
import re
from importlib import resources

import jsonschema
import networkx as nx
import pytest
import torch

from interp.circuits.planted import planted_circuit
from interp.circuits.tracing import CircuitTraceConfig, TraceConfig, run, trace
from interp.errors import TargetError


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    torch.set_num_threads(1)
    pc = planted_circuit()
    graph = trace(pc.model, pc.transcoders, pc.prompt, target=pc.target_token, context_tokens=pc.prompt[None])
    out = tmp_path_factory.mktemp("graph")
    return graph, graph.write(out)


def test_report_is_self_contained(report):
    """One file: no external script or stylesheet, the viewer library inlined once (compressed),
    the graph's data beside it, and the node table as plain HTML for readers without JavaScript."""
    from interp.circuits.html import library_script

    graph, paths = report
    text = paths["html"].read_text()
    # booleans first: pytest's assertion rewriting would diff the whole page
    external = re.findall(r"<(?:script|link)[^>]+(?:src|href)=[\"']?(?:https?:)?//", text)
    library_once = text.count(library_script()) == 1 and text.count("DecompressionStream") == 1
    no_plotly = "Plotly" not in text
    has_table = all(graph.node_id(i) in text for i in range(len(graph.nodes)))
    assert external == [] and library_once and no_plotly and has_table
    assert len(text.encode()) < 300_000


PROMPT = "The war lasted from the year 1745 to the year 17"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A reference-shaped model and two transcoders saved to disk as interp writes them."""
    from interp.reference.model import architecture, build, save
    from interp.reference.tokenizer import build_tokenizer
    from interp.transcoders import registry
    from interp.transcoders.formats import save as save_tc

    root = tmp_path_factory.mktemp("saved")
    tok = build_tokenizer()
    model = build(architecture(len(tok)), tok, seed=3)
    save(model, root / "model")
    arch = registry.get("topk")
    for layer in (0, 2):
        tc = arch.transcoder(arch.config(d_in=128, d_out=128, d_sae=256, k=8), seed=layer)
        save_tc(tc, root / "tc" / f"layer_{layer}", hook_name=f"blocks.{layer}.ln2.hook_normalized",
                hook_name_out=f"blocks.{layer}.hook_mlp_out")
    return root


def test_cli_trace_writes_json_graphml_html(saved, tmp_path, capsys):
    """`interp circuit trace` on a model and transcoders saved to disk as interp writes them."""
    from interp.cli import main

    code = main([
        "circuit", "trace", "--model", str(saved / "model"), "--transcoders", str(saved / "tc"),
        "--prompt", PROMPT, "--target", "50", "--out", str(tmp_path / "graph"), "--contexts", "4",
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "attribution (edge matrix) took" in out
    for name in ("graph.json", "graph.graphml", "graph.html", "graph.pt", "graph_files/graph.json",
                 "graph_files/graph-metadata.json"):
        assert str(tmp_path / "graph" / name) in out
    schema = json.loads(resources.files("interp.circuits").joinpath("schemas/attribution-graph.schema.json").read_text())
    data = json.loads((tmp_path / "graph" / "graph.json").read_text())
    jsonschema.validate(data, schema)
    assert data["metadata"]["prompt"].startswith("The war")
    assert [n["clerp"].split(" (p=")[0] for n in data["nodes"] if n["is_target_logit"]] == ['Output "50"']
    assert json.loads((tmp_path / "graph" / "graph_files" / "graph.json").read_text())["nodes"] == data["nodes"]
    g = nx.read_graphml(tmp_path / "graph" / "graph.graphml")
    heads = {(p["layer"], p["head"], p["query"]) for p in data["interp"]["head_paths"]}
    assert g.number_of_nodes() == len(data["nodes"]) + len(heads)  # GraphML keeps the heads as nodes
    assert (tmp_path / "graph" / "graph.html").stat().st_size < 1_500_000  # d3 inlined once, compressed


def test_cli_flags_reach_the_trace(saved, tmp_path, monkeypatch, capsys):
    """--node-threshold, --edge-threshold, --batch-size and --heads set the nested configs
    and change what is traced."""
    from interp.circuits import tracing
    from interp.circuits.graph import Graph
    from interp.cli import main

    seen = []
    real = tracing.attribute
    monkeypatch.setattr(tracing, "attribute", lambda *a, **k: seen.append(a[4]) or real(*a, **k))
    code = main([
        "circuit", "trace", "--model", str(saved / "model"), "--transcoders", str(saved / "tc"),
        "--prompt", PROMPT, "--target", "50", "--out", str(tmp_path / "g"), "--contexts", "0",
        "--node-threshold", "0.5", "--edge-threshold", "0.7", "--batch-size", "7", "--heads", "false",
    ])
    assert code == 0, capsys.readouterr().err
    graph = Graph.load(tmp_path / "g" / "graph.pt")
    assert (graph.node_threshold, graph.edge_threshold) == (0.5, 0.7)
    assert graph.head_paths == [] and len(graph.edges()) > 0
    assert [cfg.batch_size for cfg in seen] == [7]
    seen.clear()
    assert main([
        "circuit", "trace", "--model", str(saved / "model"), "--transcoders", str(saved / "tc"),
        "--prompt", PROMPT, "--target", "50", "--out", str(tmp_path / "h"), "--contexts", "0",
    ]) == 0
    default = Graph.load(tmp_path / "h" / "graph.pt")
    assert (default.node_threshold, default.edge_threshold) == (0.8, 0.98) and len(default.head_paths) > 0
    assert [cfg.batch_size for cfg in seen] == [64]


def test_without_a_target_the_cli_traces_the_salient_logits(saved, tmp_path, capsys):
    """--max-n-logits and --desired-logit-prob choose the targets as circuit-tracer does."""
    from interp.circuits.graph import Graph
    from interp.cli import main

    common = ["circuit", "trace", "--model", str(saved / "model"), "--transcoders", str(saved / "tc"), "--prompt", PROMPT,
              "--contexts", "0", "--heads", "false"]
    assert main([*common, "--out", str(tmp_path / "a"), "--max-n-logits", "3", "--desired-logit-prob", "1.0"]) == 0
    three = Graph.load(tmp_path / "a" / "graph.pt")
    probs = [three.nodes[i].prob for i in three.index_of("logit")]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    assert main([*common, "--out", str(tmp_path / "b"), "--desired-logit-prob", "0.0"]) == 0
    one = Graph.load(tmp_path / "b" / "graph.pt")
    assert [one.nodes[i].index for i in one.index_of("logit")] == [three.nodes[three.index_of("logit")[0]].index]
    capsys.readouterr()


def test_help_offers_the_nested_flags(capsys):
    from interp.cli import main

    with pytest.raises(SystemExit):
        main(["circuit", "trace", "--help"])
    out = capsys.readouterr().out
    for flag in ("--node-threshold", "--edge-threshold", "--batch-size", "--heads", "--min-head-fraction", "--prompt",
                 "--max-n-logits", "--desired-logit-prob"):
        assert flag in out, flag
    assert "--attribution." not in out  # nested settings keep plain flag names


def test_run_is_the_cli_without_printing(saved, capsys):
    cfg = CircuitTraceConfig(prompt=PROMPT, model=str(saved / "model"), transcoders=str(saved / "tc"), target="50",
                             contexts=3, trace=TraceConfig(node_threshold=0.6))
    graph = run(cfg)
    assert capsys.readouterr().out == ""
    assert graph.prompt == PROMPT and graph.node_threshold == 0.6 and graph.model_name == str(saved / "model")
    assert {n.layer for n in graph.nodes if n.kind == "feature"} <= {0, 2}
    assert graph.feature_info and any(info["contexts"] for info in graph.feature_info.values())  # --contexts 3 scanned


def test_an_empty_prompt_is_refused_by_run_and_the_cli(saved, capsys):
    from interp.cli import main

    with pytest.raises(TargetError, match="the prompt is empty"):
        run(CircuitTraceConfig(prompt="", model=str(saved / "model"), transcoders=str(saved / "tc")))
    code = main(["circuit", "trace", "--model", str(saved / "model"), "--transcoders", str(saved / "tc"), "--prompt", ""])
    assert code == 2
    assert "interp: error: the prompt is empty" in capsys.readouterr().err


def test_cli_reports_a_missing_transcoder_run(tmp_path, capsys):
    from interp.cli import main

    code = main(["circuit", "trace", "--model", "reference", "--transcoders", str(tmp_path / "nope"), "--prompt", "x"])
    assert code == 2
    assert "interp transcoder train" in capsys.readouterr().err
