"""Neuron decoding: planted ground truth, exactness of the chunked/certified search, LayerNorm handling."""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import ConfigError, StoreError
from interp.neurons import DecodeConfig, DecodeResult, NeuronTable, classify, decode
from interp.neurons.topk import _extremes, topk_scores
from interp.planted import neuron_model


@pytest.fixture(scope="module")
def planted():
    return neuron_model(read_token=3, write_token=7, neuron=5, d_vocab=16, d_model=32, d_mlp=16)


@pytest.mark.parametrize("method", ["certified", "exact"])
def test_planted_neuron_decodes_to_its_write_token(planted, method):
    model, p = planted
    table = decode(model, side="out", k=3, method=method)
    row = table.row_of(p.layer, p.neuron)
    assert table.top_ids[row, 0] == p.write_token
    # the planted write vector is strength * e_B; through the tied unembedding e_B scores strength
    assert table.top_values[row, 0] == pytest.approx(4.0, rel=1e-5)


def test_planted_neuron_read_side_decodes_to_its_read_token(planted):
    model, p = planted
    table = decode(model, side="in", k=3)
    assert table.top_ids[table.row_of(p.layer, p.neuron), 0] == p.read_token


def test_search_finds_the_planted_neuron_first(planted):
    model, p = planted
    table = decode(model, k=3)
    token = table.vocab[p.write_token]
    hits = table.search(token, within=1)
    assert len(hits) == 1 and int(hits.neuron[0]) == p.neuron
    assert len(table.search("no-such-token")) == 0
    with pytest.raises(ValueError):
        table.search("")


def test_extremes_match_topk():
    scores = torch.randn(37, 5003)
    for k in (1, 10, 30):
        t_v, t_i, b_v, b_i = _extremes(scores, k)
        assert torch.equal(t_i, scores.topk(k, dim=1).indices)
        assert torch.equal(b_i, scores.topk(k, dim=1, largest=False).indices)
        assert torch.equal(t_v, scores.gather(1, t_i))


@pytest.mark.parametrize("method", ["certified", "exact"])
def test_chunked_search_equals_the_full_product(method):
    vectors, W = torch.randn(300, 24), torch.randn(24, 3000)
    full = vectors @ W
    top = full.topk(10, dim=1)
    bottom = full.topk(10, dim=1, largest=False)
    t_v, t_i, b_v, b_i = topk_scores(vectors, W, k=10, method=method, neuron_chunk=64, vocab_chunk=700)
    assert torch.equal(t_i, top.indices) and torch.equal(b_i, bottom.indices)
    torch.testing.assert_close(t_v, top.values, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b_v, bottom.values, rtol=1e-5, atol=1e-5)


def test_certified_falls_back_when_it_cannot_prove(caplog):
    # a margin of 0 leaves no slack, so near-ties force the float32 fallback; the answer stays exact
    vectors, W = torch.randn(64, 16), torch.randn(16, 2000)
    full = vectors @ W
    _, t_i, _, b_i = topk_scores(vectors, W, k=5, method="certified", margin=0)
    assert torch.equal(t_i, full.topk(5, dim=1).indices)
    assert torch.equal(b_i, full.topk(5, dim=1, largest=False).indices)


def _random_reference_shaped(seed: int = 0):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64, d_vocab=300, n_ctx=16,
                                  act_fn="gelu_new", normalization_type="LN", seed=seed)
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith((".w", ".b")) or "ln" in name:
                param.copy_(torch.rand_like(param) + 0.5 if name.endswith("w") else torch.randn_like(param) * 0.3)
    return model


@pytest.mark.parametrize("side", ["out", "in"])
def test_unprocessed_and_processed_weights_rank_tokens_alike(side):
    """Folding and centring by transformer-lens must not change the decoded tokens."""
    from transformer_lens import HookedTransformer

    raw = _random_reference_shaped()
    processed = HookedTransformer(raw.cfg.__class__(**{**raw.cfg.to_dict(), "normalization_type": "LN"}))
    processed.load_and_process_state_dict(raw.state_dict(), fold_ln=True, center_writing_weights=True, center_unembed=True)
    assert processed.cfg.normalization_type == "LNPre"
    a = decode(raw, side=side, k=8, method="exact")
    b = decode(processed, side=side, k=8, method="exact")
    assert torch.equal(a.top_ids, b.top_ids)
    assert torch.equal(a.bottom_ids, b.bottom_ids)


def test_ln_weight_is_folded_not_ignored():
    raw = _random_reference_shaped()
    plain = decode(raw, k=8, method="exact")
    with torch.no_grad():
        raw.ln_final.w.copy_(torch.rand_like(raw.ln_final.w) * 3)
    assert not torch.equal(decode(raw, k=8, method="exact").top_ids, plain.top_ids)


def test_save_load_round_trip(tmp_path, planted):
    table = decode(planted[0], k=4)
    path = table.save(tmp_path / "t.safetensors")
    loaded = NeuronTable.load(path)
    assert loaded.vocab == table.vocab and loaded.side == "out" and loaded.k == 4
    for name in ("layer", "neuron", "top_ids", "top_values", "bottom_ids", "bottom_values"):
        assert torch.equal(getattr(loaded, name), getattr(table, name))
    (tmp_path / "bad.safetensors").write_text("not a table")
    with pytest.raises(StoreError):
        NeuronTable.load(tmp_path / "bad.safetensors")
    html = table.to_html()
    assert "plotly" in html and "<script src=\"http" not in html and "filterRows" in html


def test_bad_arguments_are_explained(planted):
    model, _ = planted
    with pytest.raises(ValueError, match="out of range"):
        decode(model, layers=3)
    with pytest.raises((ValueError, TypeError)):  # the Literal is type-checked in tests, a ValueError at run time
        decode(model, side="up")
    with pytest.raises(ValueError, match="k must be"):
        decode(model, k=0)
    with pytest.raises(ConfigError, match="bad layers"):
        decode(model, layers="first")


def test_layers_are_read_like_every_other_command():
    model = _random_reference_shaped()
    assert decode(model, layers="1", k=2).layer.unique().tolist() == [1]
    assert torch.equal(decode(model, layers="0-1", k=2).top_ids, decode(model, layers=None, k=2).top_ids)
    assert torch.equal(decode(model, layers="all", k=2).layer, decode(model, layers=[1, 0], k=2).layer)


def test_table_is_a_result_and_writes_its_files(tmp_path, planted):
    model, p = planted
    table = decode(model, k=4)
    text = table.summary()
    assert text.startswith("decoded 16 neurons of layer 0") and f"L{p.layer}N{p.neuron}" in text
    paths = table.write(tmp_path)
    assert {path.name for path in paths.values()} == {"neurons.safetensors", "neurons.json", "neurons.html"}
    assert torch.equal(NeuronTable.load(tmp_path).top_ids, table.top_ids)  # a directory reads its neurons.safetensors
    records = json.loads(paths["records"].read_text())
    assert len(records) == 16 and records[p.neuron]["top"][0] == table.vocab[p.write_token]
    # the JSON of the Result base holds the tensors too, and reads back exactly
    back = NeuronTable.from_dict(json.loads(json.dumps(table.to_dict())))
    for name in ("layer", "neuron", "top_ids", "top_values", "bottom_ids", "bottom_values"):
        assert torch.equal(getattr(back, name), getattr(table, name)) and getattr(back, name).dtype == getattr(table, name).dtype


def test_decode_result_writes_and_reads_back_the_command_files(tmp_path, planted):
    model, p = planted
    table = decode(model, k=4)
    result = DecodeResult(table, classify(table, {"seven": [table.vocab[p.write_token]]}, top=1, exact=True))
    paths = result.write(tmp_path / "out")
    assert {path.name for path in paths.values()} == {"neurons.safetensors", "neurons.json", "classes.json", "decode.html"}
    for loaded in (DecodeResult.load(tmp_path / "out"), DecodeResult.load(result.save(tmp_path / "decode.json"))):
        assert loaded.classes == result.classes and torch.equal(loaded.table.top_values, table.top_values)
    assert result.classes.strongest("seven").neuron == p.neuron
    assert "seven" in result.summary() and "decoded 16 neurons" in result.summary()
    html = paths["html"].read_text()
    assert "Strongest neurons per class" in html and "filterRows" in html


@pytest.mark.parametrize(("settings", "flag"), [({"k": 0}, "^--k must be at least 1"), ({"class_top": 11}, "^--class-top"),
                                                ({"k": 2, "class_top": 0}, "class-top")])
def test_decode_config_errors_name_the_flag(settings, flag):
    with pytest.raises(ConfigError, match=flag):
        DecodeConfig(**settings)
