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
