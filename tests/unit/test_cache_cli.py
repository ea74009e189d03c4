"""`interp cache run` and `interp cache info`: thin shells over interp.cache.run / interp.cache.info."""

from __future__ import annotations

import pytest
import torch

from interp.cache import ActivationStore, CacheConfig, CacheRunConfig, run
from interp.cli import main
from interp.errors import ConfigError


def run_args(out, *extra):
    return ["cache", "run", "--out", str(out), "--model", "reference", "--n-tokens", "1k", "--ctx-len", "32",
            "--batch-size", "4", "--layers", "0,1", "--noprogress", *extra]


def test_run_then_info_then_resume(tmp_path, capsys):
    out = tmp_path / "store"
    assert main(run_args(out)) == 0
    store = ActivationStore.open(out)
    assert store.hook_names == [
        "blocks.0.ln2.hook_normalized", "blocks.1.ln2.hook_normalized", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out",
    ]
    # --n-tokens 1k: 1000 tokens, rounded down to whole contexts of 32
    assert len(store) == 31 * 32 and store.manifest["data"] == "reference (seed 0, ctx_len 32)"
    printed = capsys.readouterr().out
    assert "992 rows" in printed and f"wrote store    {out}" in printed
    assert main(["cache", "info", str(out)]) == 0
    assert "992 rows" in capsys.readouterr().out
    assert main(run_args(out)) == 2
    assert "--resume" in capsys.readouterr().err
    before = store.read_all()
    assert main(run_args(out, "--resume")) == 0  # complete already: nothing to add
    assert torch.equal(ActivationStore.open(out).read_all().acts["blocks.1.hook_mlp_out"], before.acts["blocks.1.hook_mlp_out"])


def test_unknown_site_and_missing_budget_are_clear_errors(tmp_path, capsys):
    assert main(["cache", "run", "--out", str(tmp_path / "a"), "--sites", "mlp_outt", "--n-tokens", "64"]) == 2
    assert "Close matches: mlp_out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # the config refuses it while the arguments are parsed
        main(["cache", "run", "--out", str(tmp_path / "b")])
    assert exit_.value.code == 2 and "--n-tokens" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["cache", "run", "--out", str(tmp_path / "c"), "--n-tokens", "64", "--hooks", "blocks.0.hook_mlp_out",
              "--layers", "0"])
    assert exit_.value.code == 2 and "either --hooks or --sites/--layers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cache", "run", "--out", str(tmp_path / "d"), "--n-tokens", "lots"])
    assert "--n-tokens is not a count" in capsys.readouterr().err
    assert main(["cache", "info", str(tmp_path / "nothing")]) == 2
    assert "not an activation store" in capsys.readouterr().err


def test_sites_take_transformer_lens_names_and_hook_names(tmp_path, capsys):
    """--sites takes TransformerLens' site names and aliases, hook names relative to the block and
    full hook names; hook_mlp_in, which TransformerLens computes only with use_hook_mlp_in, is
    turned on for the run when asked for by name, and the bare word mlp_in (interp's old name of
    ln2_normalized) is refused with both choices while the model does not compute it."""

    def args(out, *sites):
        return ["cache", "run", "--out", str(out), "--n-tokens", "256", "--ctx-len", "32", "--layers", "1",
                "--noprogress", "--sites", *sites]

    out = tmp_path / "store"
    assert main(args(out, "z", "attn_z", "hook_mlp_in", "ln2.hook_normalized", "blocks.0.hook_resid_post", "hook_embed")) == 0
    store = ActivationStore.open(out)
    assert store.hook_names == ["blocks.1.attn.hook_z", "blocks.1.hook_mlp_in", "blocks.1.ln2.hook_normalized",
                                "blocks.0.hook_resid_post", "hook_embed"]
    assert store.model_architecture == "GPT2LMHeadModel"
    assert main(args(tmp_path / "mid", "resid_mid")) == 0
    torch.testing.assert_close(store.read_all().acts["blocks.1.hook_mlp_in"],
                               ActivationStore.open(tmp_path / "mid").read_all().acts["blocks.1.hook_resid_mid"])
    capsys.readouterr()
    assert main(args(tmp_path / "old", "mlp_in")) == 2
    err = capsys.readouterr().err
    assert "use_hook_mlp_in" in err and "as hook_mlp_in" in err and "ln2_normalized" in err


def test_run_is_the_python_api_of_the_command(tmp_path):
    """A notebook calls interp.cache.run with the same config the command line builds."""
    cfg = CacheRunConfig(out=str(tmp_path / "store"), layers="1", sites=["mlp_out"], ctx_len=16,
                         cache=CacheConfig(n_tokens="0.1k", batch_size=2, progress=False))
    store = run(cfg)
    assert store.hook_names == ["blocks.1.hook_mlp_out"] and len(store) == 6 * 16  # 100 tokens -> 6 contexts
    assert store.summary() == store.describe() and "96 rows" in store.summary()
    assert cfg.cache.description is None  # run does not write into the caller's config


def test_config_errors_name_the_flag():
    with pytest.raises(ConfigError, match="--n-tokens must be at least 1"):
        CacheConfig(n_tokens="0")
    with pytest.raises(ConfigError, match="--resume and --overwrite"):
        CacheConfig(resume=True, overwrite=True)
    with pytest.raises(ConfigError, match="--shard-mb"):
        CacheConfig(shard_mb=0.0)
    assert CacheConfig(n_tokens="5M").token_budget == 5_000_000 and CacheConfig().token_budget is None
    with pytest.raises(ConfigError, match="bad layers"):
        run(CacheRunConfig(out="unused", layers="0;1", cache=CacheConfig(n_tokens="64")))


def test_a_text_file_shorter_than_n_tokens_is_cached_whole_and_says_what_to_pass(tmp_path, caplog):
    text = tmp_path / "short.txt"
    text.write_text("The cat sat on the mat. " * 60)
    out = tmp_path / "store"
    assert main(["cache", "run", "--out", str(out), "--model", "reference", "--data", str(text), "--n-tokens", "100k",
                 "--ctx-len", "32", "--batch-size", "4", "--layers", "0", "--noprogress"]) == 0
    held = len(ActivationStore.open(out))
    assert 0 < held < 100_000
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "ran out" in r.getMessage()]
    assert len(warning) == 1
    assert f"the store holds those {held:,} tokens" in warning[0] and f"--n-tokens {held} to ask for what there is" in warning[0]
