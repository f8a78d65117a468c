"""The pure layers do no I/O, read no clock and use no global randomness (DESIGN.md).

One checker, run on the source with ast over every module that must stay pure: the Raft core and
its simulator, the skip list, the KV state machine and its replica glue and simulator, the RPC frame
codec, and the clerk's retry logic and server table. Purity is what lets the simulator replay a run
from its seed and lets the same code run under asyncio, threads or virtual time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PURE_MODULES = sorted(
    {
        *(ROOT / "raftcore").rglob("*.py"),
        *(ROOT / "skiplist").glob("*.py"),
        *(ROOT / "kvserver" / "testing").glob("*.py"),
        ROOT / "kvserver" / "replica.py",
        ROOT / "kvserver" / "state_machine.py",
        ROOT / "kvserver" / "sessions.py",
        ROOT / "rpc" / "codec.py",
        ROOT / "rpc" / "errors.py",
        ROOT / "rpc" / "controller.py",
        ROOT / "clerk" / "core.py",
        ROOT / "clerk" / "members.py",
    }
)

FORBIDDEN_MODULES = frozenset(
    {
        "asyncio",
        "datetime",
        "io",
        "logging",
        "multiprocessing",
        "os",
        "pathlib",
        "select",
        "selectors",
        "shutil",
        "signal",
        "socket",
        "subprocess",
        "sys",
        "threading",
        "time",
        "uvloop",
    }
)
# I/O, or values that differ from run to run (hash of str/bytes is salted per process).
FORBIDDEN_CALLS = frozenset({"open", "input", "print", "hash", "id"})


def violations(tree: ast.Module) -> list[str]:
    """Every forbidden import, global-random use and I/O builtin call in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.name == "random" and alias.asname is not None:
                    found.append(f"line {node.lineno}: random imported as {alias.asname}")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES:
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
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"line {node.lineno}: {node.func.id}() is I/O or run-dependent")
    return found


def test_the_pure_layers_are_all_found() -> None:
    """A moved directory must not make the check vacuous."""
    names = {str(p.relative_to(ROOT)) for p in PURE_MODULES}
    assert {
        "raftcore/raft.py",
        "raftcore/rawnode.py",
        "raftcore/testing/network.py",
        "skiplist/skiplist.py",
        "kvserver/testing/node.py",
        "rpc/codec.py",
        "clerk/core.py",
    } <= names


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_pure(path: Path) -> None:
    assert violations(ast.parse(path.read_text(), filename=str(path))) == []


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os.path",
        "from asyncio import sleep",
        "import logging",
        "import random\nx = random.random()",
        "from random import randint",
        "import random\nrandom.seed(1)",
        "import random as r",
        "print('x')",
        "h = hash(b'x')",
    ],
)
def test_the_checker_flags(source: str) -> None:
    assert violations(ast.parse(source)) != []


def test_the_checker_allows_an_injected_generator() -> None:
    assert violations(ast.parse("import random\ndef f(rng: random.Random) -> int: ...")) == []
