"""The leader's traffic to a peer that does not read stays bounded (issue 14, bug 5).

Node 3 of a three-node cluster sits behind a relay that the test pauses: the leader's writes
to it pile up as they do for a frozen peer or a cut link, and on resume everything buffered
reaches it at once (hundreds of heartbeats, each answered). Nodes 1 and 2 keep committing under
sustained proposals of large values; what the leader holds for node 3 (its sender's queue, the
calls in flight, the connection's write buffer) must stay under a stated bound, no frame may
exceed the RPC frame limit, node 3 is logged unreachable once, and it catches up quickly.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from cluster.conf import free_ports
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.node import Node, NodeConfig
from kvserver.peer_sender import PeerSender
from kvserver.service import FutureWaiter
from raftcore import Role

# What the leader may hold for one silent peer: the queue bound plus its calls in flight, counted
# twice (as messages and as frames not yet written), with room for one message over each
# (kvserver.peer_sender: 8 MiB + 2 * 4 * 2 MiB).
HELD_BOUND = 32 << 20
VALUE = b"x" * (32 << 10)


def held_bytes(sender: PeerSender) -> int:
    """Bytes the leader holds for the peer: messages queued or in calls, unwritten frames."""
    held = sender.held_bytes
    conn = sender.channel._conn
    if conn is not None and conn.transport is not None and not conn.closed:
        held += conn.transport.get_write_buffer_size() + sum(map(len, conn.out))
    return held


async def _propose_forever(leader: Node, stop: asyncio.Event) -> int:
    """Keep 64 puts of VALUE outstanding until ``stop``; return how many were acknowledged."""
    done = 0
    rid = 0
    pending: set[asyncio.Future[Result]] = set()
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        while len(pending) < 64:
            rid += 1
            future: asyncio.Future[Result] = loop.create_future()
            leader.replica.propose(
                Command(
                    client_id=b"t",
                    request_id=rid,
                    op=Op.OP_PUT,
                    key=b"k%d" % (rid % 512),
                    value=VALUE,
                ),
                FutureWaiter(future),
            )
            pending.add(future)
        leader.wakeup()
        finished, pending = await asyncio.wait(pending, timeout=0.05, return_when="FIRST_COMPLETED")
        done += sum(1 for f in finished if f.result().err == "OK")
    return done


class PausableProxy:
    """A TCP relay in front of one node: ``pause()`` stops reading from the clients (their
    writes pile up in the kernel and then in their own write buffers, as for a frozen peer or
    a cut link), ``resume()`` lets everything buffered through at once."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.running = asyncio.Event()
        self.running.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self.running.wait()
                data = await src.read(1 << 16)
                if not data:
                    break
                await self.running.wait()
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for w in self._writers:
            w.close()


def test_what_the_leader_holds_for_a_cut_off_peer_stays_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Node 3 is cut off (behind a paused relay) for 3 s under sustained proposals, then let
    through: the leader's streaming before it notices, and the burst of heartbeat responses
    after the heal, must not pile up more than HELD_BOUND for it."""
    caplog.set_level(logging.INFO, logger="kvserver.node")
    peak, acked, caught_up = asyncio.run(asyncio.wait_for(_cut_off_peer(tmp_path), 60))
    assert acked > 200  # the majority kept committing
    assert peak <= HELD_BOUND, f"the leader held {peak} bytes for the cut-off peer"
    assert "exceeds the limit" not in caplog.text
    # A call's deadline grows with the bytes in flight (PeerSender), so a 3 s cut may pass
    # without a timeout; if the peer was reported lost, that is said once and undone.
    # Raft id 3 is node2 in the logs.
    lost = caplog.text.count("peer node2 unreachable")
    assert lost <= 1
    assert lost == 0 or "peer node2 reachable" in caplog.text
    # What node 3 missed in 3 s of load (~150 MB here), caught up once the load stops: 2.8-5 s
    # on a 2-core machine, bound by the CPU of the one loop the three nodes share (without
    # flow control: 12-13 s, measured with the load still on).
    assert caught_up < 10.0, f"node 3 caught up {caught_up:.1f} s after the heal"


async def _cut_off_peer(tmp_path: Path) -> tuple[int, int, float]:
    ports = free_ports(3)
    real = {i + 1: ("127.0.0.1", ports[i]) for i in range(3)}
    proxy = PausableProxy(real[3])
    via_proxy = {**real, 3: await proxy.start()}
    nodes = {
        i: Node(
            NodeConfig(
                node_id=i,
                peers=real if i == 3 else via_proxy,
                data_dir=tmp_path / f"n{i}",
                tick_ms=5,
                fsync=False,
                max_raft_state=None,
                # Node 3 never campaigns first: the leader is 1 or 2.
                election_tick=30 if i < 3 else 1000,
            ),
        )
        for i in (1, 2, 3)
    }
    for node in nodes.values():
        await node.start()
    try:
        async with asyncio.timeout(10):
            while not any(n.replica.role is Role.LEADER for n in nodes.values()):
                await asyncio.sleep(0.01)
        leader = next(n for n in nodes.values() if n.replica.role is Role.LEADER)
        sender = leader._peers.sender(3)
        assert sender is not None
        stop = asyncio.Event()
        load = asyncio.ensure_future(_propose_forever(leader, stop))
        await asyncio.sleep(0.5)
        peak = 0
        proxy.pause()
        for _ in range(60):
            await asyncio.sleep(0.05)
            peak = max(peak, held_bytes(sender))
        proxy.resume()
        healed = asyncio.get_running_loop().time()
        stop.set()  # three nodes share this loop: let node 3 have it to catch up
        target = leader.replica.commit_index
        caught_up = None
        for _ in range(40):  # 2 s after the heal, the burst of heartbeat answers included
            await asyncio.sleep(0.05)
            peak = max(peak, held_bytes(sender))
            if caught_up is None and nodes[3].replica.applied_index >= target:
                caught_up = asyncio.get_running_loop().time() - healed
        acked = await load
        async with asyncio.timeout(20):
            while nodes[3].replica.applied_index < target:
                await asyncio.sleep(0.02)
        if caught_up is None:
            caught_up = asyncio.get_running_loop().time() - healed
        return peak, acked, caught_up
    finally:
        for node in nodes.values():
            await node.stop()
        await proxy.close()
