"""bench.compare end to end with a tiny load, and its report's choice of PySyncObj's best.

The end-to-end test runs ``python -m bench.compare`` with a marker in its environment, which
every process it starts inherits; afterwards no process on the machine may still carry it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.compare import NO_PYSYNCOBJ_READS, Settings, build_rows, main, percentile, render

REPO = Path(__file__).resolve().parents[2]
MARKER = "RAFTKV_COMPARE_SMOKE"


def _processes_with(marker: str) -> list[int]:
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(120)
def test_compare_measures_both_sides_and_leaves_no_process() -> None:
    token = f"{MARKER}={uuid.uuid4().hex}"
    env = dict(os.environ)
    env[MARKER] = token.split("=", 1)[1]
    command = [sys.executable, "-m", "bench.compare", "--json", "--runs", "1"]
    # A warm-up of 1 s: our Puts skip the preload, so the run starts right after the election.
    command += ["--duration", "0.3", "--warmup", "1", "--clients", "4", "--keys", "20"]
    command += ["--pysyncobj-inflight", "1,8"]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=110, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    rows = {(row["workload"], row["metric"].split(" ")[0]): row for row in report["rows"]}
    for workload in ("put-seq", "put-64", "get-64"):
        assert report["ours"][workload]["throughput_ops_s"] > 0
    assert rows[("put-seq", "p50")]["ours"] > 0
    assert rows[("put-seq", "p50")]["pysyncobj"] > 0
    assert rows[("put-64", "committed")]["ratio_ours_theirs"] > 0
    assert rows[("get-64", "linearizable")]["pysyncobj"] is None
    assert {(c["batch"], c["inflight"]) for c in report["pysyncobj"]["configs"]} == {
        (False, 1), (False, 8), (True, 1), (True, 8)
    }  # fmt: skip
    assert report["commit"] and report["machine"]["cpus"]
    deadline = time.monotonic() + 5.0
    while _processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(token) == []


def _config(batch: bool, inflight: int, rate: float, p50: float) -> dict[str, object]:
    return {"batch": batch, "inflight": inflight, "throughput_ops_s": rate, "p50_ms": p50,
            "p99_ms": 2 * p50}  # fmt: skip


def test_rows_take_the_lowest_single_request_latency_and_the_highest_rate() -> None:
    settings = Settings(("put-seq", "put-64"), 1.0, 0.0, 1, 64, 2, 10, (1, 1000))
    configs = [
        _config(False, 1, 900.0, 1.0),
        _config(True, 1, 10.0, 100.0),
        _config(False, 1000, 3000.0, 300.0),
        _config(True, 1000, 7000.0, 140.0),
    ]
    ours = {
        "put-seq": {"p50_ms": 0.5, "p99_ms": 1.0, "throughput_ops_s": 2000.0},
        "put-64": {"throughput_ops_s": 14000.0},
    }
    rows = build_rows(settings, ours, {"configs": configs})
    p50, p99, seq_rate, rate = rows
    assert p50["pysyncobj_config"] == "batch off, 1 in flight"
    assert p50["ratio_ours_theirs"] == pytest.approx(0.5)
    assert p99["pysyncobj"] == pytest.approx(2.0)
    assert seq_rate["ratio_ours_theirs"] == pytest.approx(2000.0 / 900.0)
    assert rate["pysyncobj_config"] == "batch on, 1000 in flight"
    assert rate["ratio_ours_theirs"] == pytest.approx(2.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_bad_arguments_exit_2_before_starting_anything() -> None:
    assert main(["--runs", "0"]) == 2
    for bad in (["--only", "put-seq,bogus"], ["--pysyncobj-inflight", "0,64"]):
        with pytest.raises(SystemExit) as exited:
            main(bad)
        assert exited.value.code == 2


def test_render_names_a_failed_side_and_the_missing_read_comparison() -> None:
    settings = Settings(("put-64", "get-64"), 1.0, 0.0, 1, 64, 2, 10, (1000,))
    ours: dict[str, dict[str, Any]] = {
        "put-64": {"error": "raftkv bench exited with 3"},
        "get-64": {"throughput_ops_s": 9000.0, "fsync": True},
    }
    configs = [_config(True, 1000, 7000.0, 140.0) | {"throughput_runs": [7000.0], "errors": {},
                                                      "undrained_runs": 0}]  # fmt: skip
    report = {
        "date": "d", "commit": "c", "elapsed_s": 1.0,
        "machine": {"platform": "p", "cpus": 2, "python": "3.11"},
        "settings": {"workloads": ["put-64", "get-64"], "runs": 1, "duration_s": 1.0,
                     "warmup_s": 0.0, "clients": 64, "processes": 2, "keys": 10,
                     "bench_args": []},
        "ours_fsync": True, "ours": ours, "pysyncobj_version": "0.3.17",
        "pysyncobj": {"configs": configs, "divergence_warnings": 0},
        "rows": build_rows(settings, ours, {"configs": configs}),
    }  # fmt: skip
    text = render(report)
    assert "ours put-64 FAILED: raftkv bench exited with 3" in text
    assert NO_PYSYNCOBJ_READS in text
    assert "7,000 (batch on, 1000 in flight)" in text
