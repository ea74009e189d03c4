"""The CLI is built from the command registry and maps errors to clear messages."""

from __future__ import annotations

import pytest

from interp import cli


def test_help_lists_every_registered_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for path in cli.COMMANDS:
        assert path[0] in out


def test_subcommand_help_comes_from_field_docstrings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["reference", "train", "--help"])
    out = capsys.readouterr().out
    assert "--batch-size" in out and "Contexts per step." in out


def test_unknown_model_is_a_clear_error_with_exit_code_2(capsys):
    assert cli.main(["info", "--model", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_every_command_module_imports_and_registers():
    parser = cli.build_parser()
    assert parser.prog == "interp"
    assert ("reference", "train") in cli.COMMANDS and ("info",) in cli.COMMANDS


def test_threads_option_sets_torch_threads_and_rejects_zero(capsys):
    import torch

    from interp.cli import main

    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "info"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["--threads", "0", "info"])
    assert "--threads must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("package", ["interp", "interp.circuits", "interp.codebooks", "interp.transcoders", "interp.units"])
def test_lazy_names_are_listed_by_dir(package):
    """Tab completion (dir) lists the lazily imported public names before any is used."""
    import importlib

    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if name not in dir(module)]
    assert not missing, missing
