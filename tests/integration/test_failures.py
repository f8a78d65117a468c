"""Real node processes under load from several client processes: kill -9, restart, a leader
frozen by SIGSTOP, and a far-behind node that can only catch up by snapshot.

Every scenario runs on 3 and on 5 nodes. The load is three ``load_client.py`` processes (see
``workload.py``); after each scenario every acknowledged write must be in the store and the
merged history of every client must be linearizable.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from workload import SHARED_KEYS, ClientLoad, raw_get

from cluster.processes import ProcCluster, child_env
from lincheck import HistoryRecorder, OpKind, Status

MakeCluster = Callable[..., ProcCluster]
MakeLoad = Callable[..., ClientLoad]

# Each scenario is bounded: a hung one fails (and the fixtures still stop every process).
pytestmark = pytest.mark.timeout(60)
FAILOVER_BOUND_S = 2.0
# How long the load runs before and after a fault: short, so the directory stays quick.
LOAD_S = 1.0
SIZES = [3, 5]


def run(coro: Coroutine[Any, Any, None], timeout: float = 55.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def start_caller(cluster: ProcCluster) -> subprocess.Popen[str]:
    """callerMain, forever, as a separate client process (stopped with SIGINT)."""
    command = [sys.executable, "-m", "cli.caller", "-f", str(cluster.conf), "-n", "0"]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env=child_env(), process_group=0
    )


def stop_caller(caller: subprocess.Popen[str]) -> list[str]:
    """SIGINT callerMain and return its output lines (it must have exited 0)."""
    caller.send_signal(signal.SIGINT)
    try:
        out, _ = caller.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        caller.kill()
        caller.communicate()
        raise
    assert caller.returncode == 0, out
    return out.splitlines()


def check_caller_output(lines: list[str]) -> None:
    """Every Get returned the Put just before it, in order; then the latency summary."""
    gets = [line for line in lines if line.startswith("get return :")]
    assert gets, lines
    assert gets == [f"get return :{{{i}}}" for i in range(len(gets))]
    assert lines[-1] == f"count: {len(gets)}"
    assert lines[-3].startswith("put: p50 ") and lines[-2].startswith("get: p50 ")


@pytest.mark.parametrize("n", SIZES)
def test_kill_leader_elects_a_new_one_quickly_and_loses_no_acknowledged_write(
    make_cluster: MakeCluster, make_load: MakeLoad, n: int
) -> None:
    cluster = make_cluster(n)

    async def main() -> None:
        leader, term = await cluster.wait_leader(timeout=20)
        load = make_load(cluster)
        caller = start_caller(cluster)
        try:
            await load.wait_running()
            await asyncio.sleep(LOAD_S)
            killed_at = time.monotonic()
            cluster.kill(leader)
            survivors = set(range(n)) - {leader}
            await cluster.wait_leader(among=survivors, above_term=term, timeout=FAILOVER_BOUND_S)
            elected_ns = time.monotonic_ns()
            assert time.monotonic() - killed_at < FAILOVER_BOUND_S
            await asyncio.sleep(2 * LOAD_S)
            load.stop()
        finally:
            lines = stop_caller(caller)
        check_caller_output(lines)
        # Every client went on: each had writes acknowledged that it began under the new leader.
        assert load.clients_progressing_after(elected_ns) == load.client_ids()
        await load.verify()
        load.check_linearizable()

    run(main())


@pytest.mark.parametrize("n", SIZES)
def test_kill_every_node_and_restart_keeps_every_acknowledged_write(
    make_cluster: MakeCluster, make_load: MakeLoad, n: int
) -> None:
    cluster = make_cluster(n)

    async def main() -> None:
        await cluster.wait_leader(timeout=20)
        load = make_load(cluster, op_timeout=1.0)
        await load.wait_running()
        await asyncio.sleep(LOAD_S)
        for i in range(n):  # mid-load: some writes are in flight
            cluster.kill(i)
        load.stop()
        cluster.start_all()
        await cluster.wait_leader(timeout=20)
        await load.verify()
        load.check_linearizable()

    run(main())


@pytest.mark.parametrize("n", SIZES)
def test_sigstopped_leader_serves_no_stale_read(
    make_cluster: MakeCluster, make_load: MakeLoad, n: int
) -> None:
    cluster = make_cluster(n)
    raw = HistoryRecorder()

    async def main() -> None:
        old, term = await cluster.wait_leader(timeout=20)
        load = make_load(cluster)
        await load.wait_running()
        await asyncio.sleep(LOAD_S / 2)
        cluster.signal(old, signal.SIGSTOP)
        frozen_ns = time.monotonic_ns()
        try:
            # Longer than the election timeout (300..600 ms): the others elect a new leader.
            await cluster.wait_leader(among=set(range(n)) - {old}, above_term=term, timeout=5)
            await asyncio.sleep(LOAD_S / 2)
        finally:
            woken_ns = time.monotonic_ns()
            cluster.signal(old, signal.SIGCONT)
        # The old leader's first answers after it wakes: it must not serve its stale state.
        await asyncio.gather(*(raw_get(cluster.servers[old], key, raw) for key in SHARED_KEYS))
        await asyncio.sleep(LOAD_S)
        load.stop()
        # The new leader took writes while the old one was frozen: the old one's state was stale.
        assert any(
            op.status is Status.OK and op.op is not OpKind.GET and frozen_ns < op.call < woken_ns
            for op in load.history
        )
        await load.verify()
        load.check_linearizable(raw.history())

    run(main())


@pytest.mark.parametrize("n", SIZES)
def test_a_node_far_behind_catches_up_by_snapshot_under_load(
    make_cluster: MakeCluster, make_load: MakeLoad, n: int
) -> None:
    cluster = make_cluster(n, max_raft_state=8192)

    async def main() -> None:
        leader, _ = await cluster.wait_leader(timeout=20)
        lagging = (leader + 1) % n
        before = (await cluster.statuses())[lagging].reply
        assert before is not None
        cluster.kill(lagging)
        load = make_load(cluster)
        await load.wait_running()
        # Every other node compacted past everything the lagging one has: only a snapshot helps.
        async with asyncio.timeout(30):
            while True:
                others = [s.reply for s in await cluster.statuses() if s.index != lagging]
                if all(r is not None and r.SnapshotIndex > before.LastIndex for r in others):
                    break
                await asyncio.sleep(0.1)
        commit = max(r.Commit for r in others if r is not None)
        cluster.start(lagging)
        async with asyncio.timeout(20):
            while True:
                caught_up = (await cluster.statuses())[lagging].reply
                if caught_up is not None and caught_up.Applied >= commit:
                    break
                await asyncio.sleep(0.05)
        assert caught_up.SnapshotIndex > before.LastIndex
        assert re.search(r"node\d+: snapshot now at index \d+", cluster.log(lagging))
        load.stop()
        await load.verify()
        load.check_linearizable()

    run(main())
