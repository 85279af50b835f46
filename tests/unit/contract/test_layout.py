"""Issue 18's layout rules, checked on the source tree (``concner/``, without migrations):
at most 10 top-level modules, no file over 450 lines, no import cycle (function-level and
``importlib.import_module("concner…")`` imports included), ``commands/`` imports nothing
from ``ui/``, no module imports another's underscored names, and only the Argilla client
imports ``argilla``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "concner"
MAX_TOP_LEVEL_MODULES = 10
MAX_LINES = 450
ARGILLA_CLIENT = "concner.argilla.client"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str:
    """The module ``name`` lives in (``concner.a.b.C`` -> ``concner.a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(path: Path) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every concner import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.module, a.name, node.lineno) for a in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.args[0].value, None, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, imported, _ in _imports(path):
            if not module.startswith("concner"):
                continue
            full = f"{module}.{imported}" if imported else module
            target = full if full in MODULES else _owner(module)
            if target and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_top_level_holds_at_most_ten_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_450_lines(name):
    lines = len(MODULES[name].read_text("utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines"


def test_no_import_cycle_including_function_level_and_dynamic_imports():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_commands_import_nothing_from_the_ui():
    bad = [(name, target) for name, targets in _graph().items()
           if name.startswith("concner.commands") for target in targets
           if target.startswith("concner.ui")]
    assert bad == []


def test_no_module_imports_another_modules_underscored_names():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {module}.{imported}"
           for path in MODULES.values() for module, imported, line in _imports(path)
           if module.startswith("concner") and imported and imported.startswith("_")
           and not imported.startswith("__")]
    assert bad == []


def test_only_the_argilla_client_imports_argilla():
    bad = [f"{path.relative_to(ROOT)}:{line}" for name, path in MODULES.items()
           if name != ARGILLA_CLIENT for module, _, line in _imports(path)
           if module == "argilla" or module.startswith("argilla.")]
    assert bad == []
