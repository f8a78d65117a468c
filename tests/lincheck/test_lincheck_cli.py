"""``python -m lincheck``: verdicts, exit statuses, witness files, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lincheck import Operation, OpKind, Status, read_history, write_history
from lincheck.__main__ import EXIT_BAD_INPUT, EXIT_ILLEGAL, EXIT_OK, EXIT_UNKNOWN, main

PUT = Operation(1, OpKind.PUT, "x", "a", None, 0, 10, Status.OK)
GOOD_GET = Operation(2, OpKind.GET, "x", None, "a", 20, 30, Status.OK)
STALE_GET = Operation(2, OpKind.GET, "x", None, None, 20, 30, Status.OK)


def _write(tmp_path: Path, history: list[Operation]) -> Path:
    path = tmp_path / "history.jsonl"
    write_history(path, history)
    return path


def test_linearizable_history_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(_write(tmp_path, [PUT, GOOD_GET]))]) == EXIT_OK
    assert capsys.readouterr().out.startswith("linearizable: 2 operations, 1 partition(s)")


def test_violation_prints_and_writes_the_witness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, [PUT, STALE_GET])
    stem = tmp_path / "witness"
    assert main([str(path), "--witness", str(stem)]) == EXIT_ILLEGAL
    out = capsys.readouterr().out
    assert "NOT linearizable" in out
    assert "get('x') -> None" in out
    assert read_history(f"{stem}.linearized.jsonl") == [PUT]
    assert read_history(f"{stem}.unplaced.jsonl") == [STALE_GET]


def test_exhausted_budget_exits_three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    appends = [Operation(i, OpKind.APPEND, "x", str(i), None, 0, 100, Status.OK) for i in range(12)]
    impossible = Operation(99, OpKind.GET, "x", None, "?", 200, 210, Status.OK)
    path = _write(tmp_path, [*appends, impossible])
    assert main([str(path), "--max-steps", "5000"]) == EXIT_UNKNOWN
    assert "unresolved keys: ['x']" in capsys.readouterr().out


def test_malformed_history_exits_two_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, [PUT])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"op": "get"}\n')
    assert main([str(path)]) == EXIT_BAD_INPUT
    assert f"{path}:2: missing field(s)" in capsys.readouterr().err
    assert main([str(tmp_path / "absent.jsonl")]) == EXIT_BAD_INPUT
    assert main([str(path), "--timeout", "-1"]) == EXIT_BAD_INPUT


def test_module_entry_point_runs(tmp_path: Path) -> None:
    path = _write(tmp_path, [PUT, STALE_GET])
    done = subprocess.run(
        [sys.executable, "-m", "lincheck", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_ILLEGAL
    assert "NOT linearizable" in done.stdout
