"""The three CLI commands end to end on the reference model, with tiny settings, and the
``run(cfg)`` functions behind them (what a notebook calls): the same result, nothing printed."""

from __future__ import annotations

import json

import pytest
import torch

from interp.cli import main
from interp.neurons import ClampResult, DecodeResult, NeuronTable, SemanticClasses, clamping, decoding
from interp.sparsity import SparsityAnalysis, SparsityConfig
from interp.sparsity import run as run_sparsity

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
    assert _no_cdn((out / "sparsity.html").read_text())
    assert SparsityAnalysis.load(out).core.layers == [0, 1, 2, 3]


def _no_torch_settings_changed(run, cfg, capsys):
    threads = torch.get_num_threads()
    result = run(cfg)
    assert torch.get_num_threads() == threads
    assert capsys.readouterr().out == ""  # the library prints nothing; the command prints the summary
    return result


def test_run_functions_are_what_the_commands_compute(tmp_path, capsys):
    table = NeuronTable.load(_cli(["neurons", "decode", "--layers", "2", "--k", "4", "--out", str(tmp_path / "d")], capsys))
    result = _no_torch_settings_changed(decoding.run, decoding.DecodeConfig(layers="2", k=4), capsys)
    assert torch.equal(result.table.top_ids, table.top_ids)
    assert result.classes == SemanticClasses.load(tmp_path / "d")

    args = ["--layer", "2", "--neuron", "7", "--n-random", "2", "--n-prompts", "2", "--ctx-len", "16"]
    saved = ClampResult.load(_cli(["neurons", "clamp", *args, "--out", str(tmp_path / "c")], capsys))
    cfg = clamping.ClampConfig(layer=2, neuron=7, n_random=2, n_prompts=2, ctx_len=16)
    assert _no_torch_settings_changed(clamping.run, cfg, capsys) == saved

    args = ["--layers", "1", "--n-batches", "1", "--batch-size", "2", "--ctx-len", "16", "--ks", "512,8", "--noprogress"]
    saved = SparsityAnalysis.load(_cli(["sparsity", *args, "--out", str(tmp_path / "s")], capsys))
    cfg = SparsityConfig(layers="1", n_batches=1, batch_size=2, ctx_len=16, ks="512,8", progress=False)
    assert _no_torch_settings_changed(run_sparsity, cfg, capsys) == saved


def _cli(args, capsys):
    """Run a command; check it printed the summary and the files; return its --out."""
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "wrote html" in out and "Traceback" not in out
    return args[args.index("--out") + 1]


@pytest.mark.parametrize(("args", "words"), [
    (["neurons", "decode", "--layers", "x,y"], ["layers", "x,y"]),
    (["neurons", "decode", "--k", "0"], ["--k must be at least 1"]),
    (["neurons", "decode", "--layers", "9"], ["layer 9 out of range"]),
    (["neurons", "clamp", "--layer", "9", "--neuron", "0"], ["--layer must be in [0, 4)"]),
    (["neurons", "clamp", "--layer", "0", "--neuron", "600"], ["--neuron must be in [0, d_mlp=512)"]),
    (["sparsity", "--ks", "512,x"], ["--ks must be integers"]),
    (["sparsity", "--ks", "1024"], ["--ks must be at most d_mlp=512"]),
    (["sparsity", "--alpha", "0"], ["--alpha must be in (0, 1]"]),
])
def test_bad_cli_input_is_explained(args, words, capsys):
    try:
        code = main(args)
    except SystemExit as exit_:  # a config refused while parsing ends like a usage error
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("interp: error: ") and "Traceback" not in err
    assert all(word in err for word in words), err
