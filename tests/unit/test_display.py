"""Every result object shows itself: a short plain repr with its headline number, and a
compact, self-contained ``_repr_html_`` (no script loaded from the network).

Each object is built small and real: a tiny store in tmp_path, a few training steps, the
planted circuit, the reference model's tasks on a handful of prompts.
"""

from __future__ import annotations

import re

import pytest
import torch

from interp.reports import brief, plain_repr, summary_html, table

EXTERNAL = re.compile(r"<(?:script|link)[^>]+(?:src|href)=[\"']?(?:https?:)?//")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (object, headline text its repr must contain). One module-wide build."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from interp.models import load_model

    model = load_model("reference", device="cpu")
    tmp = tmp_path_factory.mktemp("display")
    tokens = torch.randint(1, model.cfg.d_vocab, (8, 16))
    tokens[:, 0] = model.tokenizer.bos_token_id
    out: dict[str, tuple[object, str]] = {}

    from interp.cache import CacheConfig, StreamingActivations, cache_activations

    hooks = ["blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"]
    store = cache_activations(model, hooks, tokens, tmp / "store", CacheConfig(batch_size=4, progress=False))
    out["ActivationStore"] = (store, f"{len(store):,}")
    out["StreamingActivations"] = (StreamingActivations(model, hooks, tokens, forward_batch=4), f"{tokens.numel():,}")
    out["ActivationBatch"] = (store.read_all(), str(tokens.numel()))

    from interp.transcoders import EvalConfig, TrainConfig, evaluate, train
    from interp.transcoders.trainer import StepMetrics

    run = train(TrainConfig(layers="0", tokens="1k", batch_size=128, expansion=2, k=4, out=str(tmp / "tc"),
                            checkpoint_every=None, device="cpu", progress=False), model=model)
    out["transcoders.TrainResult"] = (run, f"{run.final['layer_0']['FVU']:.4f}")
    ev = evaluate(run.out, EvalConfig(run=run.out, n_features=2, n_contexts=2, device="cpu", progress=False),
                  model=model, tokens=tokens)
    out["EvalResult"] = (ev, f"{ev.ce_clean:.4f}")
    out["FeatureCard"] = (ev.features[0], f"latent {ev.features[0].index}")
    metrics = StepMetrics(step=3, lr=1e-3, loss={"layer_0": 0.5}, l0={"layer_0": 4.0}, fvu={"layer_0": 0.25},
                          dead_fraction={"layer_0": 0.0}, parts={"layer_0": {}})
    out["StepMetrics"] = (metrics, "FVU 0.25")

    from interp.codebooks import (
        CodebookTrainConfig,
        best_neuron_at_recall,
        collect_codes,
        inserted,
        labelled_contexts,
        load_trained,
        match_property,
        next_token_shift,
        summarize_codes,
    )
    from interp.codebooks import train as train_codebooks
    from interp.codebooks.search import collect_activations

    cb = train_codebooks(CodebookTrainConfig(out=str(tmp / "cb"), layers="1", n_codes=16, steps=2, batch_size=2, ctx_len=16,
                                             kmeans_tokens="64", eval_batches=1, checkpoint_every=2, freeze_model=True,
                                             device="cpu", progress=False))
    out["CodebookTrainResult"] = (cb, f"{cb.loss_codebooks:.4f}")
    cb_model, books = load_trained(cb.out, device="cpu")
    record = collect_codes(cb_model, books, tokens)
    hook = books.hooks[0]
    active = int((record.frequency(hook) > 0).sum())
    out["CodeRecord"] = (record, f"{active}/16 codes active")
    codes = summarize_codes(cb_model, books, record, top_codes=3, n_contexts=2, n_tokens=3)
    out["CodebookSummary"] = (codes, f"{tokens.numel():,} positions")
    shift = next_token_shift(cb_model, books, tokens[:2], force={hook: [0]})
    out["Shift"] = (shift, f"{shift.js.mean().item():.4f}")
    labelled = labelled_contexts(model.tokenizer, 2, 16)
    out["LabelledTokens"] = (labelled, "2 contexts x 16 tokens")
    with inserted(cb_model, books) as cb_run:
        cb_model(tokens[:2])
    out["CodebookRun"] = (cb_run, "(2, 16,")
    mask = tokens == tokens[0, 1]
    match = match_property(record, hook, mask, top=1)[0]
    out["CodeMatch"] = (match, f"code={match.code}")
    from interp.codebooks import CodeSearchResult

    found = CodeSearchResult(run=cb.out, property="token 1", n_positions=mask.numel(), n_positive=int(mask.sum()),
                             matches={hook: match_property(record, hook, mask, top=3)})
    out["CodeSearchResult"] = (found, f"code {match.code}, F1 {match.f1:.3f}")
    neuron = best_neuron_at_recall(collect_activations(model, tokens, "blocks.1.mlp.hook_post").flatten(0, 1), mask.flatten(), 0.5)
    out["NeuronMatch"] = (neuron, f"neuron={neuron.neuron}")

    from interp.redundancy import analyze

    red = analyze(model, tokens[:4], tokens[4:], strategies=["attn"], schedules=["one-shot"], max_drop=2, progress=False)
    out["RedundancyResult"] = (red, f"{red.baseline_loss:.4f}")
    out["Importance"] = (red.importance, str(red.importance.ranking()[0]))
    out["DropCurve"] = (red.curves[0], f"{red.curves[0].points[-1].loss:.4f}")
    out["DropPoint"] = (red.curves[0].points[1], f"{red.curves[0].points[1].loss:.4f}")

    from interp.circuits import AttributionConfig, TraceConfig, trace
    from interp.circuits.attribution import token_target
    from interp.circuits.planted import planted_circuit

    pc = planted_circuit()
    graph = trace(pc.model, pc.transcoders, pc.prompt, target=pc.target_token, cfg=TraceConfig(attribution=AttributionConfig(progress=False)))
    out["Graph"] = (graph, f"{len(graph.edges())} edges")
    out["PlantedCircuit"] = (pc, f"target token {pc.target_token}")
    out["LogitTarget"] = (token_target(pc.model, pc.target_token), f"token {pc.target_token}")
    out["Node"] = (graph.nodes[0], graph.nodes[0].label)

    from interp.reference.corpus import CorpusGenerator, World
    from interp.reference.tasks import evaluate as reference_tasks
    from interp.reference.train import ReferenceTrainResult

    metrics = reference_tasks(model, n_prompts=8)
    out["ReferenceMetrics"] = (metrics, f"{metrics.facts_top1:.4f}")
    result = ReferenceTrainResult(out=str(tmp / "ref"), steps=3, final_loss=2.5, seconds=1.0,
                                  metrics=metrics.metrics(), passed=metrics.passed())
    out["ReferenceTrainResult"] = (result, "final loss 2.5000")
    world = World.from_seed()
    out["World"] = (world, f"{len(world.born_in)} subjects")
    document = next(iter(CorpusGenerator(seed=0)))
    out["Document"] = (document, f"{len(document.tokens)} tokens")
    return out


NAMES = [
    "ActivationStore", "StreamingActivations", "ActivationBatch",
    "transcoders.TrainResult", "EvalResult", "FeatureCard", "StepMetrics",
    "CodebookTrainResult", "CodeRecord", "CodebookSummary", "CodeSearchResult", "Shift", "LabelledTokens", "CodebookRun",
    "CodeMatch",
    "NeuronMatch",
    "RedundancyResult", "Importance", "DropCurve", "DropPoint",
    "Graph", "PlantedCircuit", "LogitTarget", "Node",
    "ReferenceMetrics", "ReferenceTrainResult", "World", "Document",
]
WITH_HTML = {
    "ActivationStore", "StreamingActivations", "transcoders.TrainResult", "EvalResult", "CodebookTrainResult",
    "CodeRecord", "CodebookSummary", "CodeSearchResult", "Shift", "RedundancyResult", "Importance", "DropCurve", "Graph",
    "ReferenceMetrics", "ReferenceTrainResult",
}


@pytest.mark.parametrize("name", NAMES)
def test_plain_repr_is_short_and_says_the_headline(built, name):
    obj, headline = built[name]
    text = repr(obj)
    assert len(text.splitlines()) < 10 and len(text) < 800, text
    assert "tensor(" not in text, text
    assert headline in text, (headline, text)


@pytest.mark.parametrize("name", sorted(WITH_HTML))
def test_html_summary_is_self_contained(built, name):
    obj, _ = built[name]
    page = obj._repr_html_()
    assert page.lstrip().startswith("<div") and page.rstrip().endswith("</div>")
    assert EXTERNAL.findall(page) == []
    # a compact summary: only the graph viewer carries a script, its library (~140 kB) at most once per kernel
    assert len(page) < (400_000 if name == "Graph" else 60_000), len(page)


def test_full_reports_still_open_offline(built):
    for name in ("EvalResult", "CodebookSummary", "RedundancyResult", "Graph"):
        page = built[name][0].to_html()
        has_plot = ("interpViewerLibrary" if name == "Graph" else "Plotly.newPlot") in page  # the graph page is d3's
        assert page.startswith("<!DOCTYPE html>") and has_plot and EXTERNAL.findall(page) == [], name


def test_helpers_escape_and_truncate():
    html = table(["a<b>"], [["<script>x</script>"], [1.5], [None]], max_rows=2)
    assert "&lt;script&gt;" in html and "<script>" not in html and "&lt;b&gt;" in html
    assert "1 more" in html and "1.5000" in html
    assert brief(range(10), 3) == "0, 1, 2, \u2026 (+7 more)"
    text = plain_repr("X", "head", [str(i) for i in range(20)])
    assert len(text.splitlines()) == 8 and "14 more" in text
    block = summary_html("T<", {"k": "<i>v</i>", "x": 0.123456}, "<svg></svg>")
    assert "T&lt;" in block and "&lt;i&gt;" in block and "0.1235" in block and "<svg></svg>" in block


def test_progress_bars_show_and_can_be_turned_off(capfd):
    from interp.models import load_model
    from interp.redundancy import analyze

    model = load_model("reference", device="cpu")
    tokens = torch.randint(1, model.cfg.d_vocab, (4, 8))
    capfd.readouterr()
    analyze(model, tokens[:2], tokens[2:], strategies=["mlp"], schedules=["one-shot"], max_drop=1, progress=False)
    quiet = capfd.readouterr()
    analyze(model, tokens[:2], tokens[2:], strategies=["mlp"], schedules=["one-shot"], max_drop=1, progress=True)
    shown = capfd.readouterr()
    assert quiet.out == quiet.err == "" and shown.out == ""  # the library never prints
    assert "drop curves" in shown.err and "single drops" in shown.err
