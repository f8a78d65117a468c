"""raftcore.testing is as pure as the core: no I/O, no clocks, no module-level randomness, so a
seed replays a run exactly. Checked on the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "raftcore" / "testing"
FORBIDDEN = {
    "asyncio",
    "socket",
    "selectors",
    "threading",
    "multiprocessing",
    "subprocess",
    "time",
    "datetime",
    "os",
    "sys",
    "io",
    "pathlib",
    "uvloop",
}
MODULES = sorted(PACKAGE.glob("*.py"))


def violations(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN:
                    found.append(f"line {node.lineno}: import {alias.name}")
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
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"open", "input", "print", "hash", "id"}
        ):
            found.append(f"line {node.lineno}: {node.func.id}() is I/O or run-dependent")
    return found


def test_the_package_has_modules() -> None:
    assert len(MODULES) >= 6


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_pure_and_deterministic(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    assert violations(tree) == []


def test_the_checker_flags_what_it_should() -> None:
    bad = ast.parse("import time\nimport random\nrandom.random()\nprint(hash('x'))\n")
    assert len(violations(bad)) == 4
