"""The three CLI commands end to end on the reference model, with tiny settings."""

from __future__ import annotations

import json

import pytest
import torch

from interp.cli import main
from interp.neurons import ClampResult, DecodeResult, NeuronTable, SemanticClasses

pytestmark = pytest.mark.slow


def _no_cdn(html: str) -> bool:
    return "<script src=\"http" not in html and "plotly" in html


def test_neurons_decode_cli(tmp_path):
    out = tmp_path / "decode"
    assert main(["neurons", "decode", "--layers", "3", "--k", "5", "--out", str(out)]) == 0
    table = NeuronTable.load(out / "neurons.safetensors")
    assert len(table) == 512 and set(table.layer.tolist()) == {3}
    rows = json.loads((out / "neurons.json").read_text())
    assert len(rows) == 512 and len(rows[0]["top"]) == 5
    assert "year" in json.loads((out / "classes.json").read_text())["counts"]
    assert _no_cdn((out / "decode.html").read_text())
    result = DecodeResult.load(out)  # what the command wrote reads back as one result
    assert isinstance(result.classes, SemanticClasses) and result.classes.counts == SemanticClasses.load(out).counts
    assert torch.equal(result.table.top_ids, table.top_ids)


def test_neurons_clamp_cli(tmp_path):
    out = tmp_path / "clamp"
    args = ["neurons", "clamp", "--layer", "1", "--neuron", "3", "--n-random", "2", "--n-prompts", "2",
            "--ctx-len", "16", "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "clamp.json").read_text())
    assert result["layer"] == 1 and result["neuron"] == 3 and len(result["random_delta"]) == 2
    assert result["mean_delta"] == ClampResult.load(out).mean_delta  # derived numbers stay in the JSON
    assert _no_cdn((out / "clamp.html").read_text())


def test_sparsity_cli(tmp_path):
    out = tmp_path / "sparsity"
    args = ["sparsity", "--n-batches", "1", "--batch-size", "2", "--ctx-len", "32", "--ks", "512,64", "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "sparsity.json").read_text())
    assert len(result["layers"]) == 4 and result["layers"][0]["n_tokens"] == 2 * 31
    assert json.loads((out / "topk.json").read_text())["ks"] == [512, 64]
    assert _no_cdn((out / "report.html").read_text())


def test_bad_cli_input_is_explained(capsys):
    assert main(["neurons", "decode", "--layers", "x,y"]) == 2
    err = capsys.readouterr().err
    assert "layers" in err and "x,y" in err and "Traceback" not in err
