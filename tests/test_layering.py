"""The packages form layers whose imports only point down, with no import circle anywhere
(docs/architecture.md).

Read from the source with ast, every import counted wherever it sits (module level, inside a
function, under TYPE_CHECKING): an import that is deferred or only for the type checker is still
a dependency a reader has to hold in mind, and deferring one is how circles hide.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Which other packages each package may import. Lower layers first; ``kvserver/testing`` is the
#: simulated cluster, which drives simulated clerks and so may import ``clerk``.
ALLOWED: dict[str, frozenset[str]] = {
    "rpc": frozenset(),
    "raftcore": frozenset(),
    "skiplist": frozenset(),
    "lincheck": frozenset(),
    "kvapi": frozenset({"rpc"}),
    "clerk": frozenset({"kvapi", "lincheck", "rpc"}),
    "kvserver": frozenset({"kvapi", "raftcore", "rpc", "skiplist"}),
    "kvserver/testing": frozenset({"clerk", "kvapi", "lincheck", "raftcore", "rpc", "skiplist"}),
    "cluster": frozenset({"clerk", "kvapi", "rpc"}),
    "loadgen": frozenset({"clerk", "cluster", "kvapi", "lincheck", "rpc"}),
    "cli": frozenset({"clerk", "cluster", "kvapi", "kvserver", "loadgen", "raftcore", "rpc"}),
    "bench": frozenset({"clerk", "cluster", "kvapi", "kvserver", "raftcore", "rpc", "skiplist"}),
    "examples": frozenset({"rpc"}),
}
PACKAGES = sorted({name.split("/")[0] for name in ALLOWED})


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def production_modules() -> dict[str, Path]:
    """Every hand-written module of the production packages, by dotted name."""
    return {
        module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if not path.name.endswith("_pb2.py")
    }


def imported(path: Path, modules: Collection[str]) -> Iterator[str]:
    """The dotted names ``path`` imports (absolute imports; the tree uses no relative ones)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                # ``from pkg import mod`` loads the package first but reads nothing of it when
                # mod is a module of its own; a name the package itself defines is a
                # dependency on the package.
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in modules else node.module


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["kvserver", "testing"]:
        return "kvserver/testing"
    return parts[0]


def module_graph() -> dict[str, set[str]]:
    """Module -> the production modules it imports."""
    modules = production_modules()
    return {
        name: {dep for dep in imported(path, modules) if dep in modules and dep != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated at the end)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found is not None:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found is not None:
                return found
    return None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(layer: str) -> None:
    bad = sorted(
        f"{name} imports {dep}"
        for name, deps in module_graph().items()
        if layer_of(name) == layer
        for dep in deps
        if layer_of(dep).split("/")[0] != layer.split("/")[0]
        and layer_of(dep).split("/")[0] not in ALLOWED[layer]
    )
    assert not bad, "imports against the layering (docs/architecture.md):\n" + "\n".join(bad)


def test_nothing_imports_the_cli() -> None:
    bad = sorted(
        f"{name} imports {dep}"
        for name, deps in module_graph().items()
        if layer_of(name) != "cli"
        for dep in deps
        if layer_of(dep) == "cli"
    )
    assert not bad, "\n".join(bad)


def test_there_is_no_import_circle() -> None:
    assert find_cycle(module_graph()) is None, " -> ".join(find_cycle(module_graph()) or [])


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_package_is_in_the_table() -> None:
    top_level = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert top_level <= set(PACKAGES), f"add {sorted(top_level - set(PACKAGES))} to ALLOWED"
