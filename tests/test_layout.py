"""The code's layout, checked: one concept a module (no module over 500 lines, no function over
50), no private name imported across modules, and an import graph inside ``ibinn`` without cycles,
counting the imports made inside functions (a cycle hidden in a function body is still a cycle):
without a cycle, every edge points down some order of the modules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import ibinn

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*REPO.glob("ibinn/**/*.py"), *REPO.glob("app/**/*.py")])
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:``: they never run."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt) if hasattr(n, "lineno")}
    return lines


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The ``ibinn`` modules ``path`` imports anywhere (top level or in a function), resolved:
    ``from . import explore`` names the submodule, ``from . import load`` the package itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip, here = _type_checking_only(tree), module_name(path)
    package = here if is_package(path) else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ibinn"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "ibinn":
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found - {here}


def import_graph() -> dict[str, set[str]]:
    """Each ``ibinn`` module's imports of other ``ibinn`` modules, with the package root's
    imports on first use (its ``__getattr__`` table, which no ``import`` statement shows)."""
    paths = [p for p in SOURCES if p.parts[len(REPO.parts)] == "ibinn"]
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imported_modules(p, known) & known for p in paths}
    graph["ibinn"] |= {f"ibinn.{module or name}" for name, module in ibinn._LAZY.items()}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first = last), or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_resolution_sees_imports_in_functions_and_skips_type_checking(tmp_path, monkeypatch):
    package = tmp_path / "ibinn"
    package.mkdir()
    (package / "__init__.py").write_text("def load():\n    pass\n")
    (package / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .high import X\n"
        "def f():\n    from . import load\n    from .sub import deep\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    known = {"ibinn", "ibinn.low", "ibinn.high", "ibinn.sub", "ibinn.sub.deep"}
    assert imported_modules(package / "low.py", known) == {"ibinn", "ibinn.sub.deep"}


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert "ibinn.train" in graph and "ibinn.explore" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_counts_the_package_roots_imports_on_first_use():
    """``ibinn.load`` imports the zoo on first use: a module below the zoo importing the package
    root (``from . import load``) closes a cycle that only this edge shows."""
    graph = import_graph()
    assert {"ibinn.zoo", "ibinn.train", "ibinn.baselines"} <= graph["ibinn"]
    assert find_cycle({**graph, "ibinn.loading": graph["ibinn.loading"] | {"ibinn"}}) is not None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_are_short(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    tree = ast.parse(text)
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_name_crosses_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    crossing = [f"{node.module}.{a.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert crossing == []
