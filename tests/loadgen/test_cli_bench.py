"""``raftkv bench`` end to end: real spawned nodes and worker processes, its JSON contract, its
history, its usage errors, its exit codes, and that no process outlives it.

Every bench subprocess gets a unique marker in its environment, which its nodes and workers
inherit; after it ends, no process on the machine may still carry the marker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cli.raftkv import main
from cluster.conf import format_test_conf, free_ports
from cluster.processes import child_env
from lincheck import read_history

REPO_ROOT = Path(__file__).resolve().parents[2]
_MARK = "RAFTKV_BENCH_TEST_MARK"

pytestmark = pytest.mark.timeout(60)


def marked_processes(mark: str) -> list[int]:
    """The pids of every live process whose environment carries ``mark``."""
    found = []
    needle = f"{_MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


class Bench:
    """One ``raftkv bench`` subprocess, marked so its descendants can be found; its temporary
    files (a spawned cluster's directory) go under ``tmp``."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.mark = uuid.uuid4().hex
        env = child_env()
        env["TMPDIR"] = str(tmp)
        env[_MARK] = self.mark
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.raftkv", "bench", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, timeout: float = 45.0) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
        return self.proc.returncode, out, err

    def assert_no_descendant_left(self, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while (left := marked_processes(self.mark)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes left behind: {left}"

    def wait_for_stderr_line(self, text: str, timeout: float = 30.0) -> None:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if text in line:
                return
            assert line, "bench ended before printing " + text
        raise AssertionError(f"no {text!r} on stderr within {timeout} s")


def check_latencies(latency: dict[str, Any]) -> None:
    keys = ["p50", "p90", "p99", "p99.9", "max"]
    figures = [latency[key] for key in keys]
    assert all(isinstance(x, float) and x > 0 for x in figures), latency
    assert figures == sorted(figures), latency
    assert latency["mean"] > 0


def test_a_spawned_run_reports_the_contract_and_leaves_nothing_behind(tmp_path: Path) -> None:
    bench = Bench(
        tmp_path,
        "--spawn", "3", "--clients", "4", "--processes", "2", "--duration", "2", "--warmup", "0.5",
        "--json",
    )  # fmt: skip
    code, out, err = bench.finish()
    assert code == 0, err
    report = json.loads(out)  # exactly one JSON object on stdout
    assert report["target"]["spawned"] == 3 and len(report["target"]["servers"]) == 3
    assert report["target"]["fsync"] is True
    assert report["workload"]["clients"] == 4 and report["workload"]["processes"] == 2
    assert report["workload"]["mix"] == {"get": 0.5, "put": 0.5, "append": 0.0, "cas": 0.0}
    assert report["ops"] > 0 and report["errors"] == 0
    assert report["errors_by_kind"] == {"timeout": 0}
    assert report["elapsed_s"] == pytest.approx(2.0, abs=0.2)
    assert report["throughput_ops_s"] == pytest.approx(report["ops"] / report["elapsed_s"], 0.01)
    check_latencies(report["latency_ms"])
    assert set(report["by_op"]) == {"get", "put"}
    assert sum(entry["ops"] for entry in report["by_op"].values()) == report["ops"]
    for entry in report["by_op"].values():
        assert entry["ops"] > 0
        check_latencies(entry["latency_ms"])
    assert report["client_cpu_s"]["user"] > 0
    assert report["preload"]["written"] == 1000
    assert report["history"] is None
    assert "preloaded 1,000 keys" in err
    bench.assert_no_descendant_left()


def test_history_of_every_operation_in_a_mixed_run_is_linearizable(tmp_path: Path) -> None:
    history = tmp_path / "bench.jsonl"
    bench = Bench(
        tmp_path,
        "--spawn", "3", "--clients", "6", "--processes", "2", "--operations", "300",
        "--warmup", "0.3", "--keys", "10", "--mix", "get=40,put=30,append=20,cas=10",
        "--history", str(history),
    )  # fmt: skip
    code, out, err = bench.finish()
    assert code == 0, err
    assert f"python -m lincheck {history}" in out
    assert "cas" in out and "append" in out
    operations = read_history(history)
    assert not list(tmp_path.glob("bench.jsonl.worker*")), "the per-worker parts are merged"
    assert len({op.client_id for op in operations}) == 6
    # The preload's puts, the warm-up's and the 300 measured operations.
    assert len(operations) >= 10 + 300
    assert {op.op.value for op in operations} >= {"get", "put", "append", "cas"}
    checked = subprocess.run(
        [sys.executable, "-m", "lincheck", str(history), "--timeout", "20"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bench.assert_no_descendant_left()


def test_an_operation_count_with_shared_clerks_measures_exactly_that_many(tmp_path: Path) -> None:
    bench = Bench(
        tmp_path,
        "--spawn", "1", "--clients", "8", "--processes", "2", "--shared-clerk",
        "--operations", "150", "--warmup", "0.2", "--no-preload", "--read-ratio", "0.2", "--json",
    )  # fmt: skip
    code, out, err = bench.finish()
    assert code == 0, err
    report = json.loads(out)
    assert report["ops"] + report["errors"] == 150
    assert report["workload"]["shared_clerk"] is True
    assert report["workload"]["operations"] == 150 and report["workload"]["duration_s"] is None
    assert report["preload"] is None and report["elapsed_s"] > 0
    bench.assert_no_descendant_left()


def test_sigterm_ends_the_run_early_with_a_partial_report(tmp_path: Path) -> None:
    bench = Bench(
        tmp_path, "--spawn", "1", "--clients", "2", "--duration", "30", "--warmup", "0", "--json"
    )
    bench.wait_for_stderr_line("preloaded")
    time.sleep(1.0)
    bench.proc.send_signal(signal.SIGTERM)
    code, out, err = bench.finish(timeout=20)
    assert code == 0, err
    report = json.loads(out)
    assert report["interrupted"] is True and report["ops"] > 0
    assert report["elapsed_s"] < 10
    bench.assert_no_descendant_left()


def test_a_killed_bench_leaves_no_node_or_worker_behind(tmp_path: Path) -> None:
    bench = Bench(tmp_path, "--spawn", "2", "--clients", "2", "--duration", "30", "--keys", "10")
    bench.wait_for_stderr_line("preloaded")
    bench.proc.kill()
    bench.finish()
    bench.assert_no_descendant_left()


def test_no_reachable_cluster_exits_3(tmp_path: Path) -> None:
    conf = tmp_path / "test.conf"
    conf.write_text(format_test_conf([("127.0.0.1", port) for port in free_ports(3)]))
    code = main(["bench", "-f", str(conf), "--timeout", "0.5", "--duration", "1"])
    assert code == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "-2"], "--clients must be at least 1"),
        (["--processes", "0"], "--processes must be at least 1"),
        (["--read-ratio", "1.5"], "--read-ratio must be in [0, 1]"),
        (["--mix", "get=1,scan=1"], "unknown operation 'scan'"),
        (["--mix", "get=1", "--read-ratio", "0.5"], "either --read-ratio or --mix"),
        (["--duration", "1", "--operations", "5"], "either --duration or --operations"),
        (["--duration", "0"], "--duration must be positive"),
        (["--warmup", "-1"], "--warmup must not be negative"),
        (["--timeout", "0"], "--timeout must be positive"),
        (["--spawn", "0"], "--spawn must be at least 1"),
        (["--keys", "100000", "--key-size", "4"], "--key-size 4 is too small"),
        (["--history", "/nonexistent/dir/h.jsonl"], "no directory"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--spawn", "3", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err, captured.err


@pytest.mark.parametrize(
    "args",
    [["-f", "x.conf", "--spawn", "3"], ["--no-fsync"], ["--lease-reads"], ["--data-dir", "d"]],
)
def test_target_flags_that_contradict_each_other_exit_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "test.conf"
    conf.write_text(format_test_conf([("127.0.0.1", 1)]))
    assert main(["-f", str(conf), "bench", *args]) == 2
    assert "raftkv bench:" in capsys.readouterr().err


def test_a_usage_error_from_the_shell_exits_2(tmp_path: Path) -> None:
    bench = Bench(tmp_path, "--spawn", "3", "--clients", "-1")
    code, out, err = bench.finish(timeout=20)
    assert code == 2 and out == ""
    assert err == "raftkv bench: --clients must be at least 1, not -1\n"
