"""Every command and import shown in README.md and docs/ works.

- every ``interp ...`` command line in a code block is parsed by the real CLI parser, so its
  subcommand and flags exist and its values pass the config's own checks (the jobs
  themselves are run by the tests of each capability and by the README check in CI);
- every ``import`` / ``from ... import`` of interp in a Python block (or in a
  ``python -c "..."`` line) is executed;
- every ``python SCRIPT.py`` names a script that exists and whose ``--help`` runs.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _blocks():
    for page in PAGES:
        for match in _BLOCK.finditer(page.read_text(encoding="utf-8")):
            yield page, match.group(1), match.group(2)


def _logical_lines(body: str) -> list[str]:
    lines, current = [], ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append((current + line).strip())
        current = ""
    return [line for line in lines if line]


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        out.append(ch)
    return "".join(out).strip()


def _commands(prefix: str) -> list[tuple[str, str]]:
    found = []
    for page, _, body in _blocks():
        for line in _logical_lines(body):
            for part in re.split(r"\s&&\s", _strip_comment(line)):
                part = part.strip()
                if part.startswith(prefix):
                    found.append((page.name, part))
    return sorted(set(found))


CLI_LINES = _commands("interp ")
SCRIPT_LINES = [(p, c) for p, c in _commands("python ") if not c.startswith(("python -m pytest", "python -c"))]
PY_C_LINES = _commands("python -c")


def _import_statements(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:  # a block with placeholders: take the import lines one by one
        return [line.strip() for line in code.splitlines() if re.match(r"\s*(from interp\S* import|import interp)", line)
                and not line.rstrip().endswith("(")]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "interp" for a in node.names):
            out.append(ast.unparse(node))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "interp":
            out.append(ast.unparse(node))
    return out


def _python_imports() -> list[tuple[str, str]]:
    found = []
    for page, lang, body in _blocks():
        if lang == "python":
            found += [(page.name, stmt) for stmt in _import_statements(body)]
    for page, line in PY_C_LINES:
        code = shlex.split(line)[2]
        found += [(page, stmt) for stmt in _import_statements(code)]
    return sorted(set(found))


IMPORTS = _python_imports()


def test_the_docs_show_commands_and_imports():
    assert len(CLI_LINES) > 20 and len(IMPORTS) > 20


@pytest.mark.parametrize(("page", "line"), CLI_LINES, ids=[f"{p}: {c[:60]}" for p, c in CLI_LINES])
def test_cli_line_parses(page, line, capsys):
    from interp import cli

    argv = shlex.split(line)[1:]
    parser = cli.build_parser()
    try:
        args = cli._parse(parser, argv)
    except SystemExit as exit_:
        err = capsys.readouterr().err
        pytest.fail(f"{page}: `{line}` does not parse (exit {exit_.code}): {err.strip()[-500:]}")
    assert args._command.config.__name__ and args.cfg is not None


@pytest.mark.parametrize(("page", "statement"), IMPORTS, ids=[f"{p}: {s[:70]}" for p, s in IMPORTS])
def test_import_runs(page, statement):
    exec(compile(statement, f"<{page}>", "exec"), {})  # noqa: S102 - the docs' own import lines


@pytest.mark.parametrize(("page", "line"), SCRIPT_LINES, ids=[f"{p}: {c[:60]}" for p, c in SCRIPT_LINES])
def test_script_exists_and_its_help_runs(page, line):
    script = shlex.split(line)[1]
    assert (ROOT / script).is_file(), f"{page} runs {script}, which does not exist"
    done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
