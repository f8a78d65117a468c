"""Every repository path the docs and docstrings cite exists (issue 11, item 8).

Files move (``kvserver/cli*.py`` to ``cli/``, the Err codes to ``kvapi/``), and a citation of the
old place keeps sending readers to a file that is gone. Checked, in ``README.md``,
``BENCHMARKS.md``, ``docs/*.md`` and the docstrings and comments of every ``.py`` file (tests
included):

- a path with a slash that names a file by its extension (``kvserver/node.py``,
  ``tests/kvserver/scenarios/test_lease_faults.py``, ``docs/storage.md``) or starts with a
  top-level directory of the repository and ends in ``/`` (``tests/torture/``);
- a pytest node id's test (``tests/raftcore/campaign/test_campaign.py::test_campaign``): defined
  in that file;
- in Markdown, every relative link target (``[format](docs/storage.md)``), from the linking file;
- in Markdown and the Makefile, every ``-m MODULE`` whose top-level package is in the repository;
- the launchers: every ``[project.scripts]`` entry point of ``pyproject.toml`` (its module defines
  the function) and every dotted module ``bin/*`` runs.

Paths are read from the repository root (a Markdown file's own folder is tried too). Not checked:
paths outside the repository (``../shared/...``, absolute paths, URLs), bare file names
(``test.conf``), and placeholders written in capitals (``DIR/node0``).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_EXTENSIONS = ("py", "pyi", "md", "proto", "toml", "conf", "cfg", "ini", "txt", "json", "sh", "yml")
# Not preceded by a path character, so "../x/y.md", "/tmp/a.py" and "http://h/a.md" do not count.
_PATH = re.compile(r"(?<![\w./:~\-])((?:[A-Za-z0-9_][A-Za-z0-9_.\-]*/)+[A-Za-z0-9_.\-]*)")
_FILE = re.compile(r"\.(?:" + "|".join(_EXTENSIONS) + r")$")
_NODE_ID = re.compile(r"(?<![\w./:~\-])((?:[\w.\-]+/)*[\w.\-]+\.py)::(\w+)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_MODULE = re.compile(r"(?<![\w-])-m\s+([A-Za-z_][\w.]*)")
_DOTTED = re.compile(r"(?<![\w./-])([a-z_]\w*(?:\.\w+)+)")
_SKIPPED_DIRS = frozenset({"build", "dist", "node_modules", "site-packages", "__pycache__"})


def _top_level() -> frozenset[str]:
    return frozenset(p.name for p in ROOT.iterdir() if not p.name.startswith("."))


def cited_paths(text: str, top_level: frozenset[str]) -> Iterator[str]:
    """The repository paths ``text`` cites (see the module docstring for what counts)."""
    for match in _PATH.finditer(text):
        path = match.group(1).rstrip(".")
        first = path.split("/", 1)[0]
        if first.isupper():
            continue
        if _FILE.search(path) or (path.endswith("/") and first in top_level):
            yield path


def cited_tests(text: str) -> Iterator[tuple[str, str]]:
    """(file, name) of every pytest node id ``text`` cites, parametrization left off."""
    for match in _NODE_ID.finditer(text):
        yield match.group(1), match.group(2)


def _defines(path: Path, name: str) -> bool:
    if not path.is_file():
        return False
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return any(isinstance(node, defined) and node.name == name for node in tree.body)


def markdown_links(text: str) -> Iterator[str]:
    """Relative link targets in Markdown ``text``, without their ``#anchor``."""
    for match in _LINK.finditer(text):
        target = match.group(1).split("#", 1)[0]
        if target and "://" not in target and not target.startswith("mailto:"):
            yield target


def cited_modules(text: str, top_level: frozenset[str]) -> Iterator[str]:
    """Modules run with ``python -m`` whose top-level package is one of the repository's."""
    for match in _MODULE.finditer(text):
        module = match.group(1).rstrip(".")
        if module.split(".", 1)[0] in top_level:
            yield module


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_exists(module: str) -> bool:
    """``module`` can be run with ``python -m``."""
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()


def python_prose(source: str) -> Iterator[str]:
    """The docstrings and comments of a Python module: the prose a reader follows."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                yield docstring
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.string


def _markdown_files() -> list[Path]:
    return sorted({*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")})


def _python_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts[:-1]
        if any(part in _SKIPPED_DIRS or part.startswith(".") for part in parts):
            continue
        if parts and (ROOT / parts[0] / "pyvenv.cfg").exists():  # a virtualenv not named .venv
            continue
        if not path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            found.append(path)
    return sorted(found)


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _exists(path: str, cited_in: Path) -> bool:
    return (ROOT / path).exists() or (cited_in.parent / path).exists()


@pytest.mark.parametrize("doc", _markdown_files(), ids=_id)
def test_markdown_cites_only_existing_paths(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    top_level = _top_level()
    missing = [p for p in cited_paths(text, top_level) if not _exists(p, doc)]
    missing += [f"link {t}" for t in markdown_links(text) if not (doc.parent / t).exists()]
    missing += [f"{f}::{n}" for f, n in cited_tests(text) if not _defines(ROOT / f, n)]
    missing += [f"python -m {m}" for m in cited_modules(text, top_level) if not _module_exists(m)]
    assert missing == []


@pytest.mark.parametrize("module", _python_files(), ids=_id)
def test_docstrings_and_comments_cite_only_existing_paths(module: Path) -> None:
    top_level = _top_level()
    missing = []
    for prose in python_prose(module.read_text(encoding="utf-8")):
        missing += [path for path in cited_paths(prose, top_level) if not (ROOT / path).exists()]
        missing += [f"{f}::{n}" for f, n in cited_tests(prose) if not _defines(ROOT / f, n)]
    assert missing == []


def test_the_makefile_runs_only_existing_modules() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    modules = list(cited_modules(text, _top_level()))
    assert modules  # make run starts the cluster through one of them
    assert [m for m in modules if not _module_exists(m)] == []


def test_entry_points_and_launchers_name_existing_modules() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    missing = []
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        path = _module_file(module)
        if path is None or not _defines(path, function):
            missing.append(f"{name} = {target}")
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    launched = [
        (launcher.name, module)
        for launcher in sorted((ROOT / "bin").iterdir())
        for module in _DOTTED.findall(launcher.read_text(encoding="utf-8"))
        if module.split(".", 1)[0] in packages
    ]
    assert len(launched) >= len(scripts)  # each console script has its bin/ launcher
    missing += [f"bin/{name}: {module}" for name, module in launched if not _module_exists(module)]
    assert missing == []


def test_the_checks_see_citations_and_skip_what_is_not_one() -> None:
    top_level = frozenset({"kvserver", "tests", "docs"})
    text = (
        "see ``kvserver/node.py`` and tests/torture/, not ../shared/reference/x.md, "
        "/tmp/w.jsonl, https://github.com/etcd-io/raft/blob/main/doc.go, DIR/node0/test.conf, "
        "rpc/provider 30%, storage/ or test.conf; [format](docs/storage.md#header)"
    )
    assert list(cited_paths(text, top_level)) == [
        "kvserver/node.py",
        "tests/torture/",
        "docs/storage.md",
    ]
    assert list(markdown_links(text)) == ["docs/storage.md"]
    node_ids = "pytest 'tests/a/test_b.py::test_c[1]' tests/d.py::Test::test_e"
    assert list(cited_tests(node_ids)) == [("tests/a/test_b.py", "test_c"), ("tests/d.py", "Test")]
    assert _defines(Path(__file__), "test_the_checks_see_citations_and_skip_what_is_not_one")
    assert not _defines(Path(__file__), "cited_test")
    modules = "python -m bench.recovery; $(PY) -m pytest -m torture; python -m tests.x; x-m bench"
    assert list(cited_modules(modules, top_level | {"bench"})) == ["bench.recovery", "tests.x"]
