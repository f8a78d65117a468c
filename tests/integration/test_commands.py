"""The commands as a user runs them: raftCoreRun, callerMain and raftkv against real nodes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bin_commands import REPO_ROOT, bin_env, command

from cluster.processes import ProcCluster

MakeCluster = Callable[..., ProcCluster]

# Each scenario is bounded: a hung one fails (and its fixture still stops every node).
pytestmark = pytest.mark.timeout(60)


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> list[str]:
    """Lines of ``proc``'s stdout up to and including the first that matches ``pattern``."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no line matching {pattern!r} in {lines}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_raftcorerun_supervises_and_ctrl_c_leaves_no_node_running(tmp_path: Path) -> None:
    conf = tmp_path / "test.conf"
    supervisor = subprocess.Popen(
        [str(REPO_ROOT / "bin" / "raftCoreRun"), "-n", "3", "-f", str(conf), "--fresh"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=bin_env(),
        process_group=0,
    )
    pids: list[int] = []
    try:
        lines = read_until(supervisor, r"leader is node\d in term \d+", timeout=30)
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\) serving", "\n".join(lines))]
        assert len(pids) == 3
        assert re.fullmatch(r"(node\d+ip=127\.0\.0\.1\nnode\d+port=\d+\n){3}", conf.read_text())
        assert (tmp_path / "raftkv-data" / "node0").is_dir()

        caller = command("callerMain", "-f", str(conf), "-n", "20")
        assert caller.returncode == 0, caller.stderr
        out = caller.stdout.splitlines()
        assert out[:20] == [f"get return :{{{i}}}" for i in range(20)]
        assert out[20].startswith("put: p50 ") and out[21].startswith("get: p50 ")
        assert out[22] == "count: 20"

        os.kill(pids[1], signal.SIGKILL)
        read_until(supervisor, rf"node1 \(pid {pids[1]}\) was killed by SIGKILL", timeout=10)

        supervisor.send_signal(signal.SIGINT)  # what Ctrl-C sends it
        rest, _ = supervisor.communicate(timeout=20)
        assert supervisor.returncode == 0
        assert "stopped 3 nodes" in rest
        assert not [pid for pid in pids if alive(pid)]
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_raftkv_commands_and_exit_codes(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = make_cluster(3)
    asyncio.run(cluster.wait_leader(timeout=20))
    conf = str(cluster.conf)

    def raftkv(*args: str) -> tuple[int, str, str]:
        done = command("raftkv", "-f", conf, *args)
        return done.returncode, done.stdout, done.stderr

    assert raftkv("put", "k1", "v1") == (0, "OK\n", "")
    assert raftkv("append", "k1", "+more") == (0, "OK\n", "")
    assert raftkv("get", "k1") == (0, "v1+more\n", "")
    assert raftkv("get", "nope") == (1, "", "raftkv: key not found: nope\n")
    assert raftkv("cas", "k1", "wrong", "v2") == (1, "", "raftkv: cas refused: k1 is 'v1+more'\n")
    assert raftkv("cas", "k1", "v1+more", "v2") == (0, "OK\n", "")
    assert raftkv("put", "k2", "v") == (0, "OK\n", "")
    assert raftkv("scan") == (0, "k1\tv2\nk2\tv\n", "")
    assert raftkv("scan", "k2") == (0, "k2\tv\n", "")
    assert raftkv("scan", "", "z", "--limit", "1") == (0, "k1\tv2\n", "")
    assert raftkv("delete", "k2") == (0, "OK\n", "")
    assert raftkv("delete", "k2") == (1, "", "raftkv: key not found: k2\n")

    code, out, _ = raftkv("status")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == [
        "node", "address", "reachable", "role", "term", "leader", "commit", "applied",
        "last", "snapshot", "member",
    ]  # fmt: skip
    assert [row.split()[2] for row in rows[1:]] == ["yes"] * 3
    assert [row.split()[10] for row in rows[1:]] == ["voter"] * 3
    assert sorted(row.split()[3] for row in rows[1:]) == ["follower", "follower", "leader"]

    # Usage and configuration errors: exit 2 with the reason.
    bad = tmp_path / "bad.conf"
    bad.write_text("node0ip=127.0.0.1\n")
    done = command("raftkv", "-f", str(bad), "get", "k")
    assert (done.returncode, done.stderr) == (
        2,
        f"raftkv: {bad}: node0ip is set (line 1) but node0port is not\n",
    )
    assert command("raftkv", "-f", str(tmp_path / "missing.conf"), "get", "k").returncode == 2
    assert command("raftkv", "-f", conf, "frobnicate").returncode == 2

    # Seconds of heartbeats and a dozen requests: at INFO a node logged only its few events
    # (peers found unreachable and then reachable are events too: a slow start shows them).
    for i in range(3):
        events = [line for line in cluster.log(i).splitlines() if "reachable" not in line]
        assert len(events) <= 8, cluster.log(i)

    # A cluster that does not answer: exit 3.
    cluster.close()
    done = command("raftkv", "-f", conf, "--timeout", "1", "put", "k", "v")
    assert done.returncode == 3
    assert "cluster unavailable" in done.stderr and "UNKNOWN" in done.stderr
    done = command("raftkv", "-f", conf, "status")
    assert done.returncode == 3
    assert [row.split()[2] for row in done.stdout.splitlines()[1:]] == ["no"] * 3


def test_server_exits_zero_on_sigterm_and_reports_a_bad_id(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(1)
    asyncio.run(cluster.wait_leader(timeout=20))
    cluster.signal(0, signal.SIGTERM)
    assert cluster.procs[0].wait(timeout=15) == 0
    assert "node0 stopped" in cluster.log(0)

    done = command("raftkv", "server", "--id", "5", "-f", str(cluster.conf))
    assert done.returncode == 2
    assert "--id 5" in done.stderr
