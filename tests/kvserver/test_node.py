"""Three nodes on 127.0.0.1, one event loop, real TCP and real disk: election, writes, restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from clerk import AsyncClerk
from kvserver.cli_run import free_ports
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.node import Node, NodeConfig
from kvserver.service import FutureWaiter
from kvserver.state_machine import OK
from raftcore import Role


def run(coro: Coroutine[Any, Any, None], timeout: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


@asynccontextmanager
async def cluster(tmp_path: Path, n: int = 3) -> AsyncIterator[dict[int, Node]]:
    ports = free_ports(n)
    peers = {i + 1: ("127.0.0.1", ports[i]) for i in range(n)}
    nodes = {
        i: Node(NodeConfig(node_id=i, peers=peers, data_dir=tmp_path / f"node{i}", tick_ms=5))
        for i in peers
    }
    for node in nodes.values():
        await node.start()
    try:
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()


async def leader_of(nodes: dict[int, Node], timeout: float = 10.0) -> Node:
    async with asyncio.timeout(timeout):
        while True:
            leaders = [n for n in nodes.values() if n.replica.node.role is Role.LEADER]
            if len(leaders) == 1:
                return leaders[0]
            await asyncio.sleep(0.01)


async def write(node: Node, rid: int, key: bytes, value: bytes) -> Result:
    future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
    node.replica.propose(
        Command(client_id=b"t", request_id=rid, op=Op.OP_PUT, key=key, value=value),
        FutureWaiter(future),
    )
    node.wakeup()
    async with asyncio.timeout(5):
        return await future


def test_a_cluster_elects_one_leader_and_replicates(tmp_path: Path) -> None:
    run(_a_cluster_elects_one_leader_and_replicates(tmp_path))


async def _a_cluster_elects_one_leader_and_replicates(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await leader_of(nodes)
        for i in range(20):
            assert await write(leader, i + 1, b"k%d" % i, b"v%d" % i) == Result(err=OK)
        async with asyncio.timeout(5):
            while any(
                n.replica.applied_index < leader.replica.applied_index for n in nodes.values()
            ):
                await asyncio.sleep(0.01)
        assert all(n.replica.machine.get(b"k19") == b"v19" for n in nodes.values())


def test_acknowledged_writes_survive_a_full_restart(tmp_path: Path) -> None:
    run(_acknowledged_writes_survive_a_full_restart(tmp_path))


async def _acknowledged_writes_survive_a_full_restart(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await leader_of(nodes)
        for i in range(10):
            await write(leader, i + 1, b"k%d" % i, b"v%d" % i)
        ports = {i: n.config.address for i, n in nodes.items()}
    assert ports
    async with cluster(tmp_path) as nodes:
        leader = await leader_of(nodes)
        # The new leader's first-term no-op commits, so everything before it is applied.
        async with asyncio.timeout(5):
            while leader.replica.machine.get(b"k9") is None:
                await asyncio.sleep(0.01)
        assert [leader.replica.machine.get(b"k%d" % i) for i in range(10)] == [
            b"v%d" % i for i in range(10)
        ]


def test_a_new_leader_is_elected_when_the_leader_stops(tmp_path: Path) -> None:
    run(_a_new_leader_is_elected_when_the_leader_stops(tmp_path))


async def _a_new_leader_is_elected_when_the_leader_stops(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        old = await leader_of(nodes)
        await write(old, 1, b"k", b"v")
        await old.stop()
        rest = {i: n for i, n in nodes.items() if n is not old}
        new = await leader_of(rest)
        assert new is not old
        assert await write(new, 2, b"k", b"w") == Result(err=OK)


def test_clerks_use_the_nodes_through_kvserverrpc_across_a_failover(tmp_path: Path) -> None:
    run(_clerks_across_a_failover(tmp_path))


async def _clerks_across_a_failover(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        servers = [n.config.address for n in sorted(nodes.values(), key=lambda n: n.config.node_id)]
        async with AsyncClerk(servers, op_timeout=10) as kv:
            await kv.put("x", "0")
            for i in range(1, 20):
                await kv.append("x", str(i))
            old = await leader_of(nodes)
            await old.stop()
            await kv.append("x", "!")
            assert await kv.get("x") == "".join(str(i) for i in range(20)).encode() + b"!"
