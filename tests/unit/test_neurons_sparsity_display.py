"""Notebook display of every neuron and sparsity result: short plain reprs, compact offline HTML.

Each result is built for real on a planted model (interp.planted), then: its ``repr`` is a
few lines with its headline number and no tensor or vocabulary dump; its ``_repr_html_``
is one well-formed, script-free block that shows the same number; ``to_html()`` opens
offline (no script loaded from a URL).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import torch

from interp.neurons import (
    ClampResult,
    ClassNeuron,
    DecodeResult,
    ModelComparison,
    NeuronTable,
    SemanticClasses,
    clamp_test,
    classify,
    compare,
    decode,
)
from interp.planted import density_model, neuron_model, uniform_token_stream
from interp.reports import histogram_counts, layer_numbers, layer_span, token_key
from interp.sparsity import (
    CoreSimilarity,
    LayerSparsity,
    SparsityAnalysis,
    SparsityResult,
    TopKCurve,
    core_similarity,
    measure,
    topk_curve,
)

_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _Checker(HTMLParser):
    """Counts tags, checks that every opened element is closed in order, and collects script sources."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.script_srcs: list[str] = []
        self.external: list[str] = []
        self.scripts = 0
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag in ("link", "img", "iframe"):
            self.external += [v for n, v in attrs if n in ("href", "src") and v and v.startswith(("http:", "https:", "//"))]
        if tag == "script":
            self.scripts += 1
            self.script_srcs += [value for name, value in attrs if name == "src"]
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()


def _check_html(text: str, compact: bool) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors[:3]
    assert not checker.stack, f"unclosed elements: {checker.stack}"
    assert not checker.script_srcs, f"scripts loaded from {checker.script_srcs}"
    assert not checker.external, f"resources loaded from {checker.external}"
    if compact:
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "a notebook summary loads nothing"
        assert checker.scripts == 0, "a notebook summary carries no scripts"
        assert len(text) < 20_000, f"summary is {len(text)} characters"
        assert "<table" in text
    return checker


def _check_repr(obj, *needles: str) -> str:
    text = repr(obj)
    assert len(text.splitlines()) < 10 and len(text) < 800, text
    assert text.startswith(type(obj).__name__ + "(")
    assert "tensor(" not in text and "[0.0" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


# --- neurons ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted():
    return neuron_model(read_token=3, write_token=7, neuron=5, d_vocab=16, d_mlp=16)


@pytest.fixture(scope="module")
def table(planted):
    model, _ = planted
    return decode(model, k=4)


def test_neuron_table_display(table, planted):
    _, p = planted
    assert isinstance(table, NeuronTable) and len(table) == 16
    strongest = f"L{p.layer}N{p.neuron}"
    text = _check_repr(table, "16 neurons", "side 'out'", "k 4", strongest)
    assert len(text) < 400
    html = table._repr_html_()
    checker = _check_html(html, compact=True)
    assert "NeuronTable" in html and ">16<" in html
    assert "svg" not in checker.tags  # 16 neurons: no histogram, the rows say it all
    assert html.count("<tr>") <= 1 + 7 + 10  # header + headline rows + at most ten table rows
    full = table.to_html()
    _check_html(full, compact=False)
    assert "filterRows" in full


def test_large_neuron_table_display_stays_compact():
    vocab = [f"tok{i}" for i in range(5000)]
    n, k = 3000, 10
    big = NeuronTable("out", k, "big", vocab, torch.arange(n) // 1000, torch.arange(n) % 1000,
                      torch.randint(0, 5000, (n, k)), torch.randn(n, k).sort(dim=1, descending=True).values,
                      torch.randint(0, 5000, (n, k)), torch.randn(n, k).sort(dim=1).values)
    text = _check_repr(big, "3,000 neurons", "layers 0-2")
    assert "tok" in text and text.count("tok") <= 3  # the strongest neuron's three tokens, not the vocabulary
    html = big._repr_html_()
    checker = _check_html(html, compact=True)
    assert "svg" in checker.tags  # the score histogram
    assert "first 10 of 3,000 rows" in html


def test_search_result_with_no_rows_displays(table):
    empty = table.search("no-such-token")
    _check_repr(empty, "0 neurons")
    _check_html(empty._repr_html_(), compact=True)


def test_clamp_result_display(planted):
    model, p = planted
    tokens = torch.tensor([[0, 1, 2, 4, 6, 8, 9, 10], [0, 11, 12, 13, 14, 15, 2, 1]])
    result = clamp_test(model, p.layer, p.neuron, tokens, [p.write_token], value=2.0, n_random=6)
    assert isinstance(result, ClampResult)
    _check_repr(result, f"L{p.layer}N{p.neuron}", f"{result.mean_delta:+.3f}", "beats 100% of 6")
    html = result._repr_html_()
    checker = _check_html(html, compact=True)
    assert f"{result.mean_delta:+.4f}" in html and "svg" in checker.tags
    _check_html(result.to_html(), compact=False)


def test_semantic_classes_and_neuron_display(table, planted):
    _, p = planted
    report = classify(table, {"seven": ["<7>"], "three": ["<3>"]}, top=1, exact=True)
    assert isinstance(report, SemanticClasses)
    assert report.counts["seven"] >= 1
    _check_repr(report, "of 16 neurons", "seven: ", f"L{p.layer}N{p.neuron}")
    html = report._repr_html_()
    _check_html(html, compact=True)
    assert "seven" in html and f"L{p.layer}N{p.neuron}" in html
    _check_html(report.to_html(), compact=False)
    best = report.strongest("seven")
    assert isinstance(best, ClassNeuron)
    _check_repr(best, f"L{p.layer}N{p.neuron}", f"{best.strength:.3f}")


def test_model_comparison_display(table, planted):
    model, _ = planted
    other, _ = neuron_model(read_token=3, write_token=9, neuron=5, d_vocab=16, d_mlp=16)
    comparison = compare(table, decode(other, k=4))
    assert isinstance(comparison, ModelComparison)
    _check_repr(comparison, f"top-1 unchanged {comparison.mean_unchanged:.3f}", "layer 0:")
    html = comparison._repr_html_()
    _check_html(html, compact=True)
    assert f"{comparison.mean_unchanged:.4g}" in html
    _check_html(comparison.to_html(), compact=False)


# --- sparsity --------------------------------------------------------------------------

ACTIVE = [0, 2, 5, 7, 10, 12, 15, 20]
"""Neuron j is positive on the ACTIVE[j] lowest token ids (see interp.planted.density_model)."""


@pytest.fixture(scope="module")
def dense():
    model, expected = density_model(active_tokens=ACTIVE, d_vocab=20, d_mlp=8)
    return model, expected, uniform_token_stream(20, repeats=8, ctx_len=16)


def test_sparsity_result_display(dense):
    model, expected, tokens = dense
    result = measure(model, [tokens])
    assert isinstance(result, SparsityResult)
    positive = result.mean("positive")
    _check_repr(result, f"positive {positive:.4f}", "layer 0:")
    html = result._repr_html_()
    checker = _check_html(html, compact=True)
    assert f"{positive:.4g}" in html and "svg" in checker.tags
    _check_html(result.to_html(), compact=False)
    layer = result.layers[0]
    assert isinstance(layer, LayerSparsity)
    _check_repr(layer, f"positive {layer.positive:.4f}", f"dead {layer.dead}")
    _check_html(layer._repr_html_(), compact=True)


def test_sparsity_repr_of_many_layers_is_clipped(dense):
    model, _, tokens = dense
    result = measure(model, [tokens])
    many = SparsityResult(result.model_name, result.threshold, result.deft_eps, result.dense_frequency, True,
                          [LayerSparsity(**{**vars(result.layers[0]), "layer": i}) for i in range(24)])
    text = _check_repr(many, "layers 0-23")
    assert "more" in text


def test_topk_curve_display(dense):
    model, _, tokens = dense
    curve = topk_curve(model, tokens, ks=[8, 4, 1])
    assert isinstance(curve, TopKCurve)
    _check_repr(curve, f"baseline loss {curve.baseline_loss:.4f}", "k     1:")
    html = curve._repr_html_()
    checker = _check_html(html, compact=True)
    assert f"{curve.increase[-1]:+.4f}" in html and "svg" in checker.tags
    _check_html(curve.to_html(), compact=False)


def test_core_similarity_display(dense):
    model, _, _ = dense
    groups = [[torch.tensor([0, 2, 5, 3]), torch.tensor([0, 2, 5, 4])], [torch.tensor([0, 11, 17, 6]), torch.tensor([0, 11, 17, 7])]]
    core = core_similarity(model, groups, alpha=1.0, beta=1.0)
    assert isinstance(core, CoreSimilarity)
    _check_repr(core, f"related {core.mean_related:.3f}", f"unrelated {core.mean_unrelated:.3f}")
    html = core._repr_html_()
    _check_html(html, compact=True)
    assert f"{core.mean_related:.4g}" in html
    _check_html(core.to_html(), compact=False)


# --- the commands' composite results ---------------------------------------------------


def test_decode_result_display(table, planted):
    _, p = planted
    result = DecodeResult(table, classify(table, {"seven": ["<7>"]}, top=1, exact=True))
    _check_repr(result, "16 neurons", "semantic classes", f"L{p.layer}N{p.neuron}")
    html = result._repr_html_()
    _check_html(html, compact=False)  # two compact blocks, one after the other
    assert "NeuronTable" in html and "SemanticClasses" in html and "<script" not in html
    _check_html(result.to_html(), compact=False)


def test_sparsity_analysis_display(dense):
    model, _, tokens = dense
    groups = [[torch.tensor([0, 2, 5, 3]), torch.tensor([0, 2, 5, 4])], [torch.tensor([0, 11, 17, 6]), torch.tensor([0, 11, 17, 7])]]
    analysis = SparsityAnalysis(measure(model, [tokens]), topk_curve(model, tokens, ks=[8, 1]),
                                core_similarity(model, groups, alpha=1.0, beta=1.0))
    _check_repr(analysis, "model", "SparsityResult(", "TopKCurve(", "CoreSimilarity(")
    html = analysis._repr_html_()
    assert "<script" not in html and html.count("<svg") == 3
    _check_html(analysis.to_html(), compact=False)


# --- old names and shared helpers ------------------------------------------------------


def test_old_renderer_names_warn_and_still_render(table, dense):
    from interp.neurons import clamp_report, class_report_html, comparison_report, decode_report
    from interp.sparsity import core_report, sparsity_report, topk_report

    model, _, tokens = dense
    classes = classify(table, {"seven": ["<7>"]}, top=1, exact=True)
    curve = topk_curve(model, tokens, ks=[8, 1], progress=False)
    groups = [[torch.tensor([0, 2, 5, 3]), torch.tensor([0, 2, 5, 4])], [torch.tensor([0, 11, 17, 6]), torch.tensor([0, 11, 17, 7])]]
    core = core_similarity(model, groups, alpha=1.0, beta=1.0, progress=False)
    calls = [
        (lambda: decode_report(table, 100, classes=classes), "Neuron decoding"),
        (lambda: class_report_html(classes), "Semantic-class neurons"),
        (lambda: comparison_report(compare(table, table)), "model comparison"),
        (lambda: clamp_report([]), "Neuron clamp test"),
        (lambda: sparsity_report(measure(model, [tokens], progress=False), curve, core, table), "Decoded neurons"),
        (lambda: topk_report(curve), "Top-k thresholding"),
        (lambda: core_report(core), "CoreInfer core neurons"),
    ]
    for call, title in calls:
        with pytest.warns(DeprecationWarning, match="is deprecated: use"):
            page = call()
        assert title in page and page.startswith("<!DOCTYPE html>")


def test_shared_helpers_live_in_reports_and_sparsity_does_not_load_neurons():
    import subprocess
    import sys

    assert layer_numbers([2, 0, 1, 1]) == "0-2" and layer_numbers([0, 2]) == "0, 2" and layer_numbers([]) == "none"
    assert layer_span([3]) == "layer 3" and layer_span(range(9)) == "layers 0-8"
    assert token_key("\u0120Red") == token_key("\u2581red") == token_key(" RED ") == "red"
    labels, counts = histogram_counts([0.0, 0.1, 0.9, 1.0], bins=2)
    assert counts == [2.0, 2.0] and labels == ["0.25", "0.75"]
    code = "import sys, interp.sparsity; print(sorted(m for m in sys.modules if m.startswith('interp.neurons')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
