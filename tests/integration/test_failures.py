"""Real node processes under client load: kill -9, restart, and a leader frozen by SIGSTOP."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from proc_cluster import ProcCluster, child_env
from workload import Writers

from clerk import OperationTimeoutError
from kvserver.kvserver_rpc_pb2 import GetArgs, GetReply
from lincheck import HistoryRecorder, OpKind, Status, assert_linearizable
from rpc import RpcChannel, RpcError

MakeCluster = Callable[..., ProcCluster]

# Each scenario is bounded: a hung one fails (and its fixture still stops every node).
pytestmark = pytest.mark.timeout(60)
FAILOVER_BOUND_S = 2.0


def run(coro: Coroutine[Any, Any, None], timeout: float = 60.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def start_caller(cluster: ProcCluster) -> subprocess.Popen[str]:
    """callerMain, forever, as a separate client process (stopped with SIGINT)."""
    command = [sys.executable, "-m", "kvserver.cli_caller", "-f", str(cluster.conf), "-n", "0"]
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


@pytest.mark.parametrize("n", [3, 5])
def test_kill_leader_elects_a_new_one_quickly_and_loses_no_acknowledged_write(
    make_cluster: MakeCluster, n: int
) -> None:
    cluster = make_cluster(n)

    async def main() -> None:
        leader, term = await cluster.wait_leader(timeout=20)
        caller = start_caller(cluster)
        try:
            writers = Writers(cluster, clients=2)
            stop = asyncio.Event()
            load = asyncio.create_task(writers.run(stop))
            await asyncio.sleep(1.0)
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            cluster.kill(leader)
            survivors = set(range(n)) - {leader}
            await cluster.wait_leader(among=survivors, above_term=term, timeout=FAILOVER_BOUND_S)
            failover = loop.time() - killed_at
            assert failover < FAILOVER_BOUND_S
            await asyncio.sleep(1.5)
            stop.set()
            await load
            assert writers.acks_after(killed_at + failover) > 0, "clients made no progress"
            async with cluster.clerk() as kv:
                await writers.verify(kv)
        finally:
            lines = stop_caller(caller)
        check_caller_output(lines)

    run(main())


def test_kill_every_node_and_restart_keeps_every_acknowledged_write(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(3)

    async def main() -> None:
        await cluster.wait_leader(timeout=20)
        writers = Writers(cluster, clients=2, op_timeout=1.0)
        stop = asyncio.Event()
        load = asyncio.create_task(writers.run(stop))
        await asyncio.sleep(1.5)
        for i in range(3):  # mid-load: some writes are in flight
            cluster.kill(i)
        stop.set()
        await load
        cluster.start_all()
        await cluster.wait_leader(timeout=20)
        async with cluster.clerk() as kv:
            await writers.verify(kv)

    run(main())


async def raw_get(address: tuple[str, int], key: str, history: HistoryRecorder) -> None:
    """One Get asked of one server only, recorded: ok with its value, else failed."""
    handle = history.call("raw", "get", key)
    channel = RpcChannel(*address)
    try:
        reply = await channel.call(
            "kvServerRpc", "Get", GetArgs(Key=key.encode()), GetReply, timeout=1.0
        )
    except RpcError:
        history.ret(handle, status=Status.FAIL)
        return
    finally:
        await channel.close()
    if reply.Err == b"OK":
        history.ret(handle, reply.Value.decode())
    elif reply.Err == b"ErrNoKey":
        history.ret(handle, None)
    else:
        history.ret(handle, status=Status.FAIL)


def test_sigstopped_leader_serves_no_stale_read(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    history = HistoryRecorder()
    keys = ["a", "b"]
    frozen: list[int] = []  # when the old leader was stopped, and when it was continued

    async def client(c: int, stop: asyncio.Event) -> None:
        async with cluster.clerk(history=history, op_timeout=3.0) as kv:
            k = 0
            while not stop.is_set():
                key = keys[k % len(keys)]
                try:
                    if k % 3 == 0:
                        await kv.put(key, f"{c}.{k}")
                    elif k % 3 == 1:
                        await kv.append(key, f"{c}.{k};")
                    else:
                        await kv.get(key)
                except OperationTimeoutError:
                    pass
                k += 1

    async def main() -> None:
        old, term = await cluster.wait_leader(timeout=20)
        stop = asyncio.Event()
        load = asyncio.gather(*(client(c, stop) for c in range(3)))
        await asyncio.sleep(0.5)
        cluster.signal(old, signal.SIGSTOP)
        frozen.append(time.monotonic_ns())
        try:
            # Longer than the election timeout (300..600 ms): the others elect a new leader.
            await cluster.wait_leader(among=set(range(3)) - {old}, above_term=term, timeout=5)
            await asyncio.sleep(0.5)
        finally:
            frozen.append(time.monotonic_ns())
            cluster.signal(old, signal.SIGCONT)
        # The old leader's first answers after it wakes: it must not serve its stale state.
        await asyncio.gather(*(raw_get(cluster.servers[old], key, history) for key in keys))
        await asyncio.sleep(1.0)
        stop.set()
        await load

    run(main())
    records = history.history()
    assert sum(op.status is Status.OK for op in records) > 20
    # The new leader took writes while the old one was frozen: the old one's state was stale.
    assert any(
        op.status is Status.OK and op.op is not OpKind.GET and frozen[0] < op.call < frozen[1]
        for op in records
    )
    assert_linearizable(records)
