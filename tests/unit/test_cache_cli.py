"""`interp cache run` and `interp cache info`: thin shells over cache_activations / ActivationStore."""

from __future__ import annotations

import torch

from interp.cache import ActivationStore
from interp.cli import main


def run_args(out, *extra):
    return ["cache", "run", "--out", str(out), "--model", "reference", "--n-tokens", "256", "--ctx-len", "32",
            "--batch-size", "4", "--layers", "0", "1", "--noprogress", *extra]


def test_run_then_info_then_resume(tmp_path, capsys):
    out = tmp_path / "store"
    assert main(run_args(out)) == 0
    store = ActivationStore.open(out)
    assert store.hook_names == [
        "blocks.0.ln2.hook_normalized", "blocks.1.ln2.hook_normalized", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out",
    ]
    assert len(store) == 256 and store.manifest["data"] == "reference (seed 0, ctx_len 32)"
    assert main(["cache", "info", str(out)]) == 0
    assert "256 rows" in capsys.readouterr().out
    assert main(run_args(out)) == 2
    assert "--resume" in capsys.readouterr().err
    before = store.read_all()
    assert main(run_args(out, "--resume")) == 0  # complete already: nothing to add
    assert torch.equal(ActivationStore.open(out).read_all().acts["blocks.1.hook_mlp_out"], before.acts["blocks.1.hook_mlp_out"])


def test_unknown_site_and_missing_budget_are_clear_errors(tmp_path, capsys):
    assert main(["cache", "run", "--out", str(tmp_path / "a"), "--sites", "mlp_outt", "--n-tokens", "64"]) == 2
    assert "Close matches: mlp_out" in capsys.readouterr().err
    assert main(["cache", "run", "--out", str(tmp_path / "b")]) == 2
    assert "--n-tokens" in capsys.readouterr().err
    assert main(["cache", "info", str(tmp_path / "nothing")]) == 2
    assert "not an activation store" in capsys.readouterr().err
