"""The skip-list benchmark runs end to end on a tiny size (its figures are not checked here)."""

from __future__ import annotations

import re

import pytest

from bench.skiplist import main


def test_bench_prints_every_row_with_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--sizes", "300", "--repeat", "1", "--probes", "50"])
    out = capsys.readouterr().out
    assert "n = 300 " in out
    for row in ("insert ", "insert asc", "get", "ceiling", "scan100", "delete", "memory"):
        line = next(line for line in out.splitlines() if line.startswith(row))
        assert re.search(r"\d\.\d\dx", line), line  # the SkipList / SortedDict ratio
