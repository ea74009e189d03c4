"""The package's structure: no import cycles, one owner per error kind, the library never prints.

Import cycles are found from the source (``ast``), so the test sees every import a module
makes, also the ones inside functions that Python only runs later:

- **module level** (imports run when the module is imported, ``TYPE_CHECKING`` blocks
  excluded): the graph between modules must have no cycle;
- **package level** (all imports, deferred ones included, between the subpackages of
  ``interp``): the graph between capabilities must have no cycle either, so the layers of
  docs/architecture.md hold (core modules below capabilities, ``cli`` on top).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "interp"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, name: str, known: set[str], *, module_level: bool) -> set[str]:
    """The interp modules ``path`` imports (at module level only, or everywhere)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if module_level and nested:
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("interp"):
                        target = resolve(alias.name)
                        if target:
                            found.add(target)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                if not base.startswith("interp"):
                    continue
                for alias in child.names:
                    target = resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in known else resolve(base)
                    if target:
                        found.add(target)
            visit(child, top and not nested)

    visit(tree, True)
    found.discard(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def _parents_of(name: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first: those are edges too."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_cycle_between_modules():
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(path, name, known, module_level=True) for name, path in modules.items()}
    # a package's __init__ imports nothing eagerly here beyond what it lists; a module that imports
    # its own package's __init__ (a parent) is not a cycle Python trips over, so parents are left out
    graph = {name: {t for t in targets if t not in _parents_of(name)} for name, targets in graph.items()}
    assert _cycle(graph) is None, f"module-level import cycle: {' -> '.join(_cycle(graph))}"


def _package(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else name


def test_no_import_cycle_between_packages_even_through_deferred_imports():
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        src = _package(name)
        for target in _imports(path, name, known, module_level=False):
            dst = _package(target)
            if dst != src and dst != "interp":
                graph.setdefault(src, set()).add(dst)
    cycle = _cycle(graph)
    assert cycle is None, f"package-level import cycle (deferred imports included): {' -> '.join(cycle)}"


def test_commands_never_import_the_cli():
    for name, path in _modules().items():
        if name in ("interp.cli", "interp.__main__"):
            continue
        assert "interp.cli" not in _imports(path, name, set(_modules()), module_level=False), name


def test_every_error_kind_is_defined_in_interp_errors():
    """``class XError(...)`` only in interp/errors.py (other modules import the kinds from there)."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                offenders.append(f"{path.relative_to(ROOT.parent)}: {node.name}")
    assert not offenders, offenders


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_the_library_never_prints(path):
    """Only the command line (cli.py, commands.py modules) prints; the library logs."""
    if path.name in ("cli.py", "commands.py"):
        return
    calls = [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert not calls, f"print() at lines {calls}"
