"""Real nodes in one process for the kvserver tests: a cluster on 127.0.0.1 with real TCP and
real disk, and the few things every such test does with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cluster.conf import free_ports
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.node import Node, NodeConfig
from kvserver.service import FutureWaiter
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
            await node.stop()  # a no-op for a node that stopped already


async def leader_of(nodes: dict[int, Node], timeout: float = 10.0) -> Node:
    async with asyncio.timeout(timeout):
        while True:
            leaders = [n for n in nodes.values() if n.replica.role is Role.LEADER]
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


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def join(tmp_path: Path, nodes: dict[int, Node]) -> tuple[Node, str]:
    """A node that will join ``nodes``' cluster (not started: add it first) and its address."""
    (port,) = free_ports(1)
    new_id = max(nodes) + 1
    peers = {i: n.address for i, n in nodes.items()}
    config = NodeConfig(
        node_id=new_id,
        peers=peers,
        data_dir=tmp_path / f"node{new_id}",
        tick_ms=5,
        listen=("127.0.0.1", port),
        join=True,
    )
    return Node(config), f"127.0.0.1:{port}"
