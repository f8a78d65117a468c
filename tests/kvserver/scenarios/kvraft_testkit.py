"""Shared steps of the kvraft scenarios: build a cluster, run a load, check everything."""

from __future__ import annotations

import time
from pathlib import Path

from kvserver.testing.clerk import ClerkOptions
from kvserver.testing.cluster import KVCluster, KVClusterOptions
from kvserver.testing.workload import LoadReport, LoadSpec, check_appends, run_load
from lincheck import assert_linearizable
from raftcore.testing.process import Proc
from raftcore.testing.scheduler import MS

LINCHECK_TIMEOUT_S = 60.0
"""Wall-clock budget of one linearizability check (6.5840 gives porcupine 1 s in Go)."""

OPS_PER_HEARTBEAT = 3
HEARTBEAT_INTERVAL_US = 100 * MS
SPEED_OPS = 1000


def check_history(cluster: KVCluster, save_to: Path) -> None:
    """Every operation any clerk of ``cluster`` made is linearizable (history kept on failure)."""
    assert_linearizable(
        cluster.recorder.history(), timeout=LINCHECK_TIMEOUT_S, save_to=save_to / "history"
    )


def generic_test(
    seed: int,
    servers: int,
    spec: LoadSpec,
    save_to: Path,
    *,
    max_raft_state: int | None = None,
    clerk: ClerkOptions | None = None,
) -> tuple[KVCluster, LoadReport]:
    """6.5840's ``GenericTest``: ``spec`` on a fresh cluster; every check must hold."""
    options = KVClusterOptions(max_raft_state=max_raft_state, clerk=clerk or ClerkOptions())
    cluster = KVCluster(servers, seed, options, reliable=not spec.unreliable)
    report = cluster.run(run_load(cluster, spec))
    assert not report.problems, "\n".join(report.problems[:20])
    assert sum(map(sum, report.appends)) > 0, "the clients made no progress"
    check_history(cluster, save_to)
    return cluster, report


def check_value(cluster: KVCluster, clerk_get: Proc[bytes | None], wanted: bytes) -> None:
    """Run a Get to completion and compare (6.5840's ``check``)."""
    got = cluster.run(clerk_get)
    assert got == wanted, f"get returned {got!r}, wanted {wanted!r}"


def speed_test(seed: int, max_raft_state: int | None) -> None:
    """GenericTestSpeed: 1000 sequential appends on 3 servers, at least 3 per 100 ms heartbeat."""
    cluster = KVCluster(3, seed, KVClusterOptions(max_raft_state=max_raft_state))
    ck = cluster.make_clerk()

    def appends() -> Proc[tuple[int, bytes | None]]:
        yield from ck.get(b"x")  # a leader is elected and serving
        start = cluster.now
        for i in range(SPEED_OPS):
            yield from ck.append(b"x", b"x 0 %d y" % i)
        duration = cluster.now - start
        value = yield from ck.get(b"x")
        return duration, value

    wall = time.perf_counter()
    duration, value = cluster.run(appends())
    wall = time.perf_counter() - wall
    assert check_appends(0, value or b"", SPEED_OPS) == []
    per_op_us = duration / SPEED_OPS
    print(
        f"\nkvraft speed (maxraftstate {max_raft_state}): {per_op_us / MS:.3f} ms/op virtual, "
        f"{wall / SPEED_OPS * 1e3:.3f} ms/op real"
    )
    limit_us = HEARTBEAT_INTERVAL_US / OPS_PER_HEARTBEAT
    assert per_op_us <= limit_us, f"operations too slow: {per_op_us:.0f} us/op > {limit_us:.0f}"
