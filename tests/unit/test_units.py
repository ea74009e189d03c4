"""The units comparison's measures against answers planted by hand."""

from __future__ import annotations

import json

import pytest
import torch

from interp import units
from interp.errors import ConfigError
from interp.units import ClassRow, UnitRow, UnitsComparison, UnitsConfig, UnitsRunConfig, best_precision_at_recall, compare_units

ACTIVE = [1, 2, 3, 4, 5, 6, 7, 8]
"""Neuron j of the planted model fires (pre-activation +1) on tokens 0 .. ACTIVE[j] - 1."""


# --- specificity ------------------------------------------------------------------------


def test_a_unit_firing_exactly_on_the_class_has_precision_one():
    mask = torch.zeros(40, dtype=torch.bool)
    mask[::4] = True
    inf = float("-inf")
    scores = torch.full((40, 3), inf)
    scores[:, 0] = torch.where(mask, 2.0, inf)  # exactly the class: precision 1
    scores[:, 1] = 1.0                          # everywhere: the base rate, 0.25
    scores[mask.nonzero().flatten()[:4], 2] = 5.0  # 4 of 10 class positions: cannot reach recall 0.5
    match = best_precision_at_recall(scores, mask, recall=0.5)
    assert (match.unit, match.precision, match.recall) == (0, 1.0, 1.0)
    alone = best_precision_at_recall(scores[:, 1:], mask)
    assert alone.unit == 0 and alone.precision == pytest.approx(0.25)
    none = best_precision_at_recall(scores[:, 2:], mask)
    assert (none.unit, none.precision, none.threshold) == (-1, 0.0, None)


def test_threshold_trades_the_unit_s_weak_hits_for_precision():
    # the unit is strong (3) on 6 of 10 class positions, weak (1) on the rest and on 10 others
    mask = torch.tensor([True] * 10 + [False] * 10)
    scores = torch.tensor([3.0] * 6 + [1.0] * 4 + [1.0] * 10)[:, None]
    match = best_precision_at_recall(scores, mask, recall=0.5)
    assert match.threshold == 3.0 and match.precision == 1.0 and match.recall == pytest.approx(0.6)
    full = best_precision_at_recall(scores, mask, recall=1.0)
    assert full.threshold == 1.0 and full.precision == pytest.approx(0.5)
    with pytest.raises(ValueError, match="recall"):
        best_precision_at_recall(scores, mask, recall=0.0)
    with pytest.raises(ValueError, match="no position"):
        best_precision_at_recall(scores, torch.zeros(20, dtype=torch.bool))


# --- a planted model: every answer known -------------------------------------------------


def planted():
    """Density model (attention silent, so the MLP output depends on the token only) with b_out set."""
    from interp.planted import density_model, uniform_token_stream

    model, _ = density_model(ACTIVE, d_vocab=20, d_model=32, d_mlp=8)
    with torch.no_grad():
        model.blocks[0].mlp.b_out.copy_(0.05 * torch.randn(32, generator=torch.Generator().manual_seed(1)))
    tokens = uniform_token_stream(20, 48, 16, seed=0)
    return model, tokens


@torch.no_grad()
def exact_codebook(model):
    """One code per token: the MLP's output for that token, so the snap reproduces the MLP."""
    from interp.codebooks import Codebooks

    books = Codebooks.create(model, ["mlp_out"], [0], n_codes=20, k=1)
    _, cache = model.run_with_cache(torch.arange(20)[:, None], names_filter=["blocks.0.hook_mlp_out"])
    books["blocks.0.hook_mlp_out"].codebook.data[0] = cache["blocks.0.hook_mlp_out"][:, 0]
    return books


def token_masks(tokens):
    return {f"token {t}": tokens == t for t in range(20)}


def test_exact_units_are_fully_faithful_and_l0_is_the_planted_count(tmp_path, exact_transcoder):
    model, tokens = planted()
    cfg = UnitsConfig(neuron_k=8, batch_size=8)
    result = compare_units(model, tokens, token_masks(tokens), transcoders={0: exact_transcoder(model)},
                           codebooks=exact_codebook(model), cfg=cfg)
    assert result.layers == [0] and result.kinds == ["neurons", "transcoder", "codebook"]
    assert result.ce_zero["0"] > result.ce_clean + 0.01  # the MLP matters, so "recovered" means something
    expected_l0 = sum(float((tokens[:, 1:] < a).float().mean()) for a in ACTIVE)
    for kind in ("neurons", "transcoder", "codebook"):
        row = result.row(0, kind)
        assert row.recovered == pytest.approx(1.0, abs=1e-4), kind
        assert row.fvu < 1e-8 and row.ce == pytest.approx(result.ce_clean, abs=1e-5), kind
    assert result.row(0, "neurons").l0 == pytest.approx(expected_l0)
    assert result.row(0, "transcoder").l0 == pytest.approx(expected_l0)
    assert result.row(0, "codebook").l0 == 1.0 and result.row(0, "neurons").kept == 8
    # specificity: tokens 0..7 have distinct MLP outputs, so code t is chosen exactly on token t; tokens
    # 8..19 fire no neuron and share one output, so one code serves them all; neuron 0 fires exactly on token 0; neuron t
    # fires (pre-activation 1, up to rounding) on tokens 0..t, so the best neuron for token t in 1..7 has
    # precision at least n_t / n_{<=t} (more where rounding lifts token t above the others); no neuron
    # fires on tokens 8..19, so no neuron reaches the recall there
    spec = {(c.kind, c.cls): c for c in result.classes}
    counts = torch.bincount(tokens[:, 1:].flatten(), minlength=20).double()
    for t in range(20):
        shared = float(counts[t] / counts[8:].sum())
        assert spec[("codebook", f"token {t}")].precision == pytest.approx(1.0 if t < 8 else shared)
        for kind in ("neurons", "transcoder"):
            got = spec[(kind, f"token {t}")]
            if t == 0:
                assert got.precision == 1.0 and got.recall == 1.0
            elif t < 8:
                assert float(counts[t] / counts[: t + 1].sum()) - 1e-6 <= got.precision <= 1.0
                assert got.unit >= t and got.recall >= 0.5
            else:
                assert (got.precision, got.unit) == (0.0, -1)
    assert result.row(0, "codebook").specificity == pytest.approx((8 + 1) / 20)  # the shared code's precisions sum to 1
    assert result.row(0, "neurons").specificity <= 8 / 20
    # round trip, text, reports
    paths = result.write(tmp_path)
    assert paths == {"json": tmp_path / "units.json", "html": tmp_path / "units.html"}
    again = UnitsComparison.load(tmp_path)
    assert again == result and isinstance(again.rows[0], UnitRow) and isinstance(again.classes[0], ClassRow)
    assert json.loads(paths["json"].read_text())["kind"] == "UnitsComparison"
    old = {k: v for k, v in result.to_dict().items() if k not in ("kind", "schema_version")}  # before the result base
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert UnitsComparison.load(tmp_path / "old.json") == result
    assert "| 0 | transcoder latents | 8 |" in result.markdown()
    assert result.summary().count("\n") == 4 and result.table() == result.summary()
    assert "UnitsComparison(" in repr(result) and len(repr(result)) < 800
    page = result.to_html()
    assert "<script src=" not in page and "plotly" in page and "token 19" in page
    assert "Units comparison" in result._repr_html_()


def test_unfaithful_units_recover_nothing_and_neurons_keep_top_k(exact_transcoder):
    model, tokens = planted()
    useless = exact_transcoder(model)
    with torch.no_grad():
        useless.W_dec.zero_()
        useless.b_dec.zero_()
    result = compare_units(model, tokens, token_masks(tokens), transcoders={0: useless}, cfg=UnitsConfig(batch_size=8))
    assert result.row(0, "transcoder").recovered == pytest.approx(0.0, abs=1e-4)
    assert result.row(0, "transcoder").fvu > 0.9
    neurons = result.row(0, "neurons")
    # neuron k defaults to the transcoder's L0 (rounded): the useless transcoder's is the MLP's own
    assert neurons.kept == round(result.row(0, "transcoder").l0)
    one = compare_units(model, tokens, token_masks(tokens), cfg=UnitsConfig(neuron_k=1, batch_size=8))
    assert one.row(0, "neurons").kept == 1 and one.row(0, "neurons").fvu > 0.0
    assert one.row(0, "neurons").recovered < 1.0 - 1e-3


def test_inputs_are_checked():
    model, tokens = planted()
    with pytest.raises(ValueError, match="do not exist"):
        compare_units(model, tokens, token_masks(tokens), layers=[3])
    with pytest.raises((ValueError, TypeError)):  # shapes: jaxtyping in the tests, our ValueError without it
        compare_units(model, tokens, {"bad": tokens[:2] == 0})
    from interp.units.compare import _class_masks

    with pytest.raises(ValueError, match="mask shape"):
        _class_masks({"bad": tokens[:2] == 0}, tokens, 1)
    with pytest.raises(ConfigError, match="--neuron-k must be at least 1"):
        UnitsConfig(neuron_k=0)
    with pytest.raises(ConfigError, match=r"--recall must be in \(0, 1\], got 0"):
        UnitsConfig(recall=0.0)
    with pytest.raises(ConfigError, match="--min-positives must be at least 1"):
        UnitsConfig(min_positives=0)
    with pytest.raises(ConfigError, match="--n-contexts must be at least 1, got 0"):
        UnitsRunConfig(n_contexts=0)
    with pytest.raises(ConfigError, match="--ctx-len must be at least 2"):
        UnitsRunConfig(ctx_len=1)
    # classes too small for min_positives are left out, not scored 0
    result = compare_units(model, tokens, {"rare": tokens == 99, **token_masks(tokens)}, cfg=UnitsConfig(batch_size=8))
    assert "rare" not in result.base_rates and "token 0" in result.base_rates


# --- reference corpus classes and the CLI --------------------------------------------------


def test_reference_classes_follow_the_corpus_labels(reference_model):
    data = units.labelled_data(reference_model, n_contexts=8)
    assert data.source == "corpus labels" and set(data.groups) == {"token classes", "FSM states"}
    vocab = reference_model.tokenizer.get_vocab()
    states = torch.stack([data.classes[name] for name in data.groups["FSM states"]])
    assert int(states.sum(0).max()) == 1  # a position is at most one state
    for name in data.groups["FSM states"]:
        mask = data.classes[name]
        if mask.any():
            assert bool((data.tokens[mask] == vocab["\u2581" + name.split()[1]]).all())
    year = data.classes["year"]
    assert year.any() and all(reference_model.tokenizer.convert_ids_to_tokens(int(t)).isdigit() for t in data.tokens[year])
    masks, groups = units.token_classes(data.tokens, reference_model.tokenizer, {"colour": ["red", "blue"]})
    want = (data.tokens == vocab["\u2581red"]) | (data.tokens == vocab["\u2581blue"])
    assert torch.equal(masks["colour"], want) and groups == {"token classes": ["colour"]}


def test_cli_writes_json_and_html_and_refuses_fine_tuned_codebooks(tmp_path, reference_model, capsys):
    from interp.cli import main
    from interp.codebooks import Codebooks
    from interp.transcoders import TrainResult, registry, save

    arch = registry.get("topk")
    tc = arch.transcoder(arch.config(d_in=128, d_out=128, d_sae=256, k=8), seed=0)
    save(tc, tmp_path / "tc" / "layer_1", hook_name="blocks.1.ln2.hook_normalized", hook_name_out="blocks.1.hook_mlp_out")
    TrainResult(out=str(tmp_path / "tc"), layers=[1], arch="topk", steps=0, tokens=0, seconds=0.0, final={},
                config={}, history=[]).save()
    books = Codebooks.create(reference_model, ["mlp_out"], [1], n_codes=16, k=1)
    books.save(tmp_path / "cb", extra={"model": "reference", "fine_tuned": False})
    code = main(["units", "--transcoders", str(tmp_path / "tc"), "--codebooks", str(tmp_path / "cb"),
                 "--n-contexts", "4", "--out", str(tmp_path / "out"), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0 and "transcoder latents" in printed and str(tmp_path / "out" / "units.json") in printed
    result = UnitsComparison.load(tmp_path / "out" / "units.json")
    assert [(r.layer, r.kind) for r in result.rows] == [(1, "neurons"), (1, "transcoder"), (1, "codebook")]
    assert result.row(1, "transcoder").l0 <= 8 and result.row(1, "codebook").l0 == 1
    assert (tmp_path / "out" / "plotly.min.js").stat().st_size > 1_000_000  # plotly.js once per folder, beside units.html
    books.save(tmp_path / "tuned", extra={"model": "reference", "fine_tuned": True})
    code = main(["units", "--codebooks", str(tmp_path / "tuned"), "--n-contexts", "2", "--out", str(tmp_path / "o2")])
    assert code == 2 and "fine-tuned" in capsys.readouterr().err


def test_run_returns_the_comparison_and_compare_runs_still_writes(tmp_path, reference_model):
    cfg = UnitsRunConfig(layers="1-2", n_contexts=2, ctx_len=16, out=str(tmp_path / "out"), device="cpu",
                         measure=UnitsConfig(batch_size=2, min_positives=1, progress=False))
    result = units.run(cfg, model=reference_model)
    assert result.layers == [1, 2] and result.kinds == ["neurons"] and result.n_positions == 2 * 15
    assert not (tmp_path / "out").exists()  # run() writes nothing; result.write(cfg.out) does
    with pytest.warns(DeprecationWarning, match="compare_runs"):
        again, out = units.compare_runs(cfg, model=reference_model)
    assert out == tmp_path / "out" and (out / "units.html").is_file()
    assert UnitsComparison.load(out).summary() == again.summary() == result.summary()  # (NaN != NaN: compare text)
