"""Every error docs/errors.md documents is raised, and printed, as documented.

Each section of docs/errors.md ends with ``**Try.**`` lines: a command (```interp ...``` run
in-process through ``interp.cli.main``, or ```python: EXPR``` evaluated against a small
namespace) and the fragment of the message it must give (```-> `fragment` ```). A command line
must exit 2 with one line ``interp: error: ...`` (or argparse's ``PROG: error: ...``) holding
the fragment and no traceback; a Python expression must raise the section's error kind with the
fragment in its message. Placeholders name tiny artefacts (tests/support/artefacts.py): ``{tmp}``
a fresh empty directory, ``{run}``, ``{store}``, ``{lying_store}``, ``{incomplete_store}``,
``{codebooks}``, ``{other}`` (the reference model with other weights) and ``{file}``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from support.artefacts import tree_digest

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("one_thread")]

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
TRY = re.compile(r"^\*\*Try\.\*\* `(?P<command>[^`]+)` -> `(?P<fragment>[^`]+)`\s*$")
PLACEHOLDER = re.compile(r"\{(\w+)\}")

# Sections without a **Try.** line, and why: each is exercised by the tests named.
UNTRIED = {
    "ModelLoadError: could not load a model by name": "needs the hub to be absent; tests/integration/test_models.py",
    "ModelLoadError: TransformerLens cannot convert this checkpoint": "needs unsupported checkpoints; tests/integration/test_model_families.py",
    "KernelInputError: backend 'triton' cannot run / needs the triton package": "depends on triton and TRITON_INTERPRET; tests/unit/test_kernels.py",
    "TrainingDivergedError: codebook training diverged": "needs a diverging run; tests/unit/test_codebook.py",
    "StoreError: the disk is full (activation cache)": "needs a full disk; tests/integration/test_cache_store.py (monkeypatched ENOSPC)",
    "TrainingDivergedError: transcoder training diverged": "needs a diverging run; tests/unit/test_transcoders.py",
    "StoreError: transcoder training ran out of disk": "needs a full disk; tests/reliability/test_bad_inputs_api.py (monkeypatched ENOSPC)",
    "DataError: non-finite activations while training transcoders": "tests/reliability/test_bad_inputs_api.py",
    "Units comparison: codebooks trained with the model fine-tuned": "needs a fine-tuned codebook run; tests/unit/test_units.py",
}


def sections() -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    heading = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            out[heading] = []
        elif heading is not None and (match := TRY.match(line)):
            out[heading].append((match["command"], match["fragment"]))
    return out


SECTIONS = sections()
CASES = [(heading, command, fragment) for heading, tries in SECTIONS.items() for command, fragment in tries]


def test_every_section_has_a_try_line_or_a_reason():
    missing = [h for h, tries in SECTIONS.items() if not tries and h not in UNTRIED]
    assert not missing, f"docs/errors.md sections without a **Try.** line: {missing}"
    stale = [h for h in UNTRIED if h not in SECTIONS]
    assert not stale, f"UNTRIED names sections docs/errors.md no longer has: {stale}"
    assert len(CASES) >= 40


def _fill(text: str, paths, tmp: Path) -> str:
    return PLACEHOLDER.sub(lambda m: str(tmp) if m[1] == "tmp" else str(paths[m[1]]), text)


def _kinds(heading: str) -> tuple[type, ...]:
    import interp.errors as errors

    names = re.findall(r"\b([A-Z]\w*Error)\b", heading.split(":")[0])
    builtin = {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError}
    kinds = tuple(getattr(errors, n, None) or builtin[n] for n in names)
    return kinds or (errors.InterpError,)


@pytest.mark.parametrize(("heading", "command", "fragment"), CASES, ids=[f"{h[:40]}: {c[:60]}" for h, c, _ in CASES])
def test_documented_error(heading, command, fragment, artefact_paths, tmp_path, capsys):
    filled = _fill(command, artefact_paths, tmp_path)
    watched = [p for p in artefact_paths.values() if isinstance(p, Path) and p.exists()]
    before = tree_digest(*watched)
    if filled.startswith("python: "):
        namespace = _namespace(artefact_paths, tmp_path)
        with pytest.raises(_kinds(heading)) as caught:
            eval(filled[len("python: "):], {"__builtins__": __builtins__}, namespace)  # noqa: S307 - the doc's own example
        assert fragment in str(caught.value)
    else:
        from interp.cli import main

        argv = shlex.split(filled)
        assert argv[0] == "interp"
        try:
            code = main(argv[1:])
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " ", "WARNING"))]
        assert len(lines) == 1 and "error: " in lines[0], err
        assert fragment in lines[0], lines[0]
    assert tree_digest(*watched) == before, "a refused command changed an existing file"


def _namespace(paths, tmp: Path) -> dict:
    import torch

    from interp.cache import ActivationStore
    from interp.circuits import Graph, trace
    from interp.codebooks.bottleneck import Bottleneck, BottleneckConfig
    from interp.kernels import sparse_decode, topk_activation
    from interp.models import load_model
    from interp.neurons import NeuronTable
    from interp.redundancy import importance
    from interp.sparsity import measure
    from interp.transcoders import TrainConfig, load_run

    class Lazy(dict):
        def __missing__(self, key):
            if key == "MODEL":
                self[key] = load_model("reference", device="cpu")
            elif key == "RUN":
                self[key] = load_run(paths["run"])
            elif key == "OTHER":
                self[key] = load_model(str(paths["other"]), device="cpu")
            elif key == "STORE":
                self[key] = str(paths["store"])
            elif key == "ATTN_ONLY":
                from transformer_lens import HookedTransformer, HookedTransformerConfig

                self[key] = HookedTransformer(HookedTransformerConfig(
                    n_layers=1, d_model=8, n_ctx=8, d_head=4, n_heads=2, d_vocab=10, attn_only=True, act_fn="relu"))
            else:
                raise KeyError(key)
            return self[key]

    names = Lazy(torch=torch, topk_activation=topk_activation, sparse_decode=sparse_decode, ActivationStore=ActivationStore,
                 Graph=Graph, trace=trace, NeuronTable=NeuronTable, load_run=load_run, TrainConfig=TrainConfig,
                 Bottleneck=Bottleneck, BottleneckConfig=BottleneckConfig, measure=measure, importance=importance, TMP=str(tmp))
    return names
