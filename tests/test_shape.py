"""No production module over 600 lines and no function or method over 80 (issue 11, item 8).

A long file usually holds two ideas and a long function several steps that deserve names; the
limits are where a reader starts to scroll back. Production code is every ``.py`` file outside
``tests/``: the packages, and also ``bench/`` and ``examples/``, because users run the benchmarks
and read the examples as the way to use the libraries, so they are held to the same shape.
Generated protocol code (``*_pb2.py``, ``*_pb2_grpc.py``) is protoc's, not ours. Parsed with
ast, like ``tests/test_purity.py``: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80

# Not production code: the tests themselves, and what tools put in the tree.
_SKIPPED_DIRS = frozenset(
    {"tests", "build", "dist", "node_modules", "site-packages", "__pycache__"}
)


def _is_generated(path: Path) -> bool:
    return path.name.endswith(("_pb2.py", "_pb2_grpc.py"))


def production_modules(root: Path = ROOT) -> list[Path]:
    """Every production ``.py`` file under ``root``, sorted."""
    found = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts[:-1]
        if any(part in _SKIPPED_DIRS or part.startswith(".") for part in parts):
            continue
        if parts and (root / parts[0] / "pyvenv.cfg").exists():  # a virtualenv not named .venv
            continue
        if not _is_generated(path):
            found.append(path)
    return sorted(found)


MODULES = production_modules()


def long_functions(tree: ast.Module, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``name (line N): L lines`` for every function or method in ``tree`` longer than
    ``limit`` lines, from its ``def`` to its last line (decorators not counted)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append(f"{node.name} (line {node.lineno}): {length} lines")
    return found


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_production_tree_is_found() -> None:
    names = {_id(path) for path in MODULES}
    assert {"raftcore/raft.py", "skiplist/skiplist.py", "bench/compare.py"} <= names
    assert not any(name.startswith("tests/") or name.endswith("_pb2.py") for name in names)


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_file_is_at_most_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_FILE_LINES, f"{_id(path)} has {lines} lines: split it along a seam"


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_functions_are_at_most_80_lines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert long_functions(tree) == []


def test_long_functions_measures_from_def_to_last_line() -> None:
    source = (
        "@decorator\ndef f():\n"
        + "    x = 1\n" * 80
        + "\nclass C:\n    def g(self):\n"
        + ("        pass\n" * 79)
    )
    assert long_functions(ast.parse(source)) == ["f (line 2): 81 lines"]
