"""Users' mistakes on the command line end in one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import pytest

from interp.cli import main

BAD = [
    ("info", "--model", "no-such-model"),
    ("neurons", "decode", "--k", "0"),
    ("neurons", "decode", "--layers", "x,y"),
    ("transcoder", "train", "--arch", "no-such-arch"),
    ("transcoder", "train", "--arch", "relu", "--k", "4"),
    ("transcoder", "train", "--tokens", "five"),
    ("transcoder", "train", "--tokens", "0"),
    ("transcoder", "train", "--layers", "9", "--tokens", "1k", "--out", "{tmp}/tc", "--device", "cpu"),
    ("transcoder", "eval", "{tmp}/no-such-run"),
    ("circuit", "trace", "--prompt", "The war", "--transcoders", "{tmp}/no-such-run", "--out", "{tmp}/graph"),
    ("cache", "info", "{tmp}/no-such-store"),
    ("redundancy", "--n-calibration", "0"),
    ("sparsity", "--ks", "x,y"),
    ("codebook", "train", "--n-codes", "0", "--out", "{tmp}/cb"),
    ("reference", "eval", "--model", "{tmp}/no-such-model"),
    ("units", "--layers", "99", "--out", "{tmp}/units"),
    ("transcoder", "train", "--no-such-flag", "1"),
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_invocation_is_one_line_and_exit_2(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and "error:" in lines[0], err
    assert not any(p.name not in ("tc", "graph", "cb", "units") for p in tmp_path.iterdir())


def test_debug_shows_the_traceback():
    from interp.errors import ModelLoadError

    with pytest.raises(ModelLoadError):
        main(["--debug", "info", "--model", "no-such-model"])
    with pytest.raises(ModelLoadError):
        main(["info", "--model", "no-such-model", "--debug"])
