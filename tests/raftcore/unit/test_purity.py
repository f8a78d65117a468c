"""raftcore is sans-I/O: no module under raftcore/ (but raftcore/testing/) may import anything
that does I/O or reads a clock, nor use module-level randomness. Checked on the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3] / "raftcore"
FORBIDDEN = {"asyncio", "socket", "selectors", "threading", "subprocess", "time", "os", "uvloop"}


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "testing" not in p.relative_to(ROOT).parts)


def _violations(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in FORBIDDEN:
                    found.append(f"line {node.lineno}: import {alias.name}")
                if top == "random" and alias.asname is not None:
                    found.append(f"line {node.lineno}: random imported as {alias.asname}")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            top = node.module.split(".")[0]
            if top in FORBIDDEN:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            if top == "random" and any(a.name != "Random" for a in node.names):
                found.append(f"line {node.lineno}: from random import a global-state function")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr != "Random"
        ):
            found.append(f"line {node.lineno}: random.{node.attr} uses the global generator")
    return found


def test_the_core_has_modules_to_check() -> None:
    """The glob finds the core (a moved directory must not make the purity check vacuous)."""
    names = {p.name for p in _modules()}
    assert {"raft.py", "rawnode.py", "log.py", "progress.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_does_no_io(path: Path) -> None:
    """Each core module imports no I/O module and uses no global random generator."""
    assert _violations(ast.parse(path.read_text(), str(path))) == []


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os.path",
        "from asyncio import sleep",
        "import random\nx = random.random()",
        "from random import randint",
        "import random\nrandom.seed(1)",
    ],
)
def test_checker_catches(source: str) -> None:
    """The checker itself flags every forbidden form."""
    assert _violations(ast.parse(source)) != []


def test_checker_allows_an_injected_generator() -> None:
    """random.Random as a type for an injected generator is allowed."""
    assert _violations(ast.parse("import random\ndef f(rng: random.Random) -> int: ...")) == []
