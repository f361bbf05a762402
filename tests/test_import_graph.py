"""ssc_deploy's modules import each other without a cycle, type-only and function-level imports included.

Read from the source with ``ast`` (nothing is imported): every ``import`` / ``from ... import``
anywhere in a module (inside functions, under ``TYPE_CHECKING``), relative ones resolved. A
``from package import name`` depends on the submodule ``package.name`` when there is one, else on
``package/__init__`` (so a package's ``__init__`` that re-exports from a submodule which imports
the package back is a cycle); ``import a.b.c`` depends on ``a.b.c``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ssc_deploy"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _deepest(dotted: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``import a.b.c`` that is a module of ours (the one the code uses)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return dotted


def import_graph() -> dict[str, set[str]]:
    """Module name -> the ssc_deploy modules it imports (anywhere in its body)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            deps: list[str] = []
            if isinstance(node, ast.Import):
                deps = [_deepest(alias.name, modules) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(name, is_package, node.level, node.module) if node.level else node.module or ""
                # a name that is a submodule needs that submodule; any other name needs the package's __init__
                deps = [f"{src}.{a.name}" if f"{src}.{a.name}" in modules else src for a in node.names]
            graph[name].update(d for d in deps if d in modules and d != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first = last), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_relative_function_level_and_type_only_imports():
    graph = import_graph()
    # `from .model_under_test import Artifact, Model` (relative, top level)
    assert "ssc_deploy.runtime_bench.model_under_test" in graph["ssc_deploy.runtime_bench.jobs"]
    # `from ssc_deploy.models.complexity import net_complexity` inside a function
    assert "ssc_deploy.models.complexity" in graph["ssc_deploy.runtime_bench.baselines"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
