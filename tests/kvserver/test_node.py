"""Three nodes on 127.0.0.1, one event loop, real TCP and real disk: election, writes, restart."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from node_kit import cluster, leader_of, run, write

from clerk import AsyncClerk
from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Result
from kvserver.storage import DiskStorage, StorageIOError


def test_a_cluster_elects_one_leader_and_replicates(tmp_path: Path) -> None:
    run(_a_cluster_elects_one_leader_and_replicates(tmp_path))


async def _a_cluster_elects_one_leader_and_replicates(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await leader_of(nodes)
        for i in range(20):
            assert await write(leader, i + 1, b"k%d" % i, b"v%d" % i) == Result(err=Err.OK)
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
        assert await write(new, 2, b"k", b"w") == Result(err=Err.OK)


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


def test_the_loop_keeps_serving_while_a_sync_runs_and_one_sync_covers_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fdatasync runs off the loop: while the leader's sync is held, the loop still takes
    in 20 more writes (it releases the sync itself, which it could not do if it were blocked),
    and the next single sync makes all 20 durable."""
    gate = threading.Event()
    gate.set()
    syncs: list[tuple[DiskStorage, int, bool]] = []
    real_sync = DiskStorage.sync

    def gated_sync(self: DiskStorage) -> None:
        released = gate.wait(5)
        syncs.append((self, self.last_index(), released))
        real_sync(self)

    monkeypatch.setattr(DiskStorage, "sync", gated_sync)
    run(_the_loop_keeps_serving_while_a_sync_runs(tmp_path, gate, syncs))


async def _the_loop_keeps_serving_while_a_sync_runs(
    tmp_path: Path, gate: threading.Event, syncs: list[tuple[DiskStorage, int, bool]]
) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await leader_of(nodes)
        await write(leader, 1, b"first", b"v")
        storage = leader.replica.storage
        gate.clear()
        held = asyncio.ensure_future(write(leader, 2, b"held", b"v"))
        while leader._syncing is None:  # the leader's sync of "held" now waits on the gate
            await asyncio.sleep(0.001)
        start = storage.last_index()
        later = [asyncio.ensure_future(write(leader, 3 + i, b"k%d" % i, b"v")) for i in range(20)]
        await asyncio.sleep(0.05)  # the 20 proposals reach the core while the sync is held
        gate.set()
        assert all(r == Result(err=Err.OK) for r in await asyncio.gather(held, *later))
        leader_syncs = [(last, ok) for s, last, ok in syncs if s is storage and last >= start]
        assert all(ok for _, ok in leader_syncs)
        assert [last for last, _ in leader_syncs][:2] == [start, start + 20]


def test_a_failed_fdatasync_stops_the_node_with_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed fdatasync the kernel may have dropped the pages it could not write, so
    the node cannot know what is durable: it stops (wait_stopped raises) for a restart."""

    def failing_sync(self: DiskStorage) -> None:
        raise StorageIOError("fdatasync: Input/output error", errno.EIO)

    run(_a_failed_fdatasync_stops_the_node(tmp_path, monkeypatch, failing_sync))


async def _a_failed_fdatasync_stops_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_sync: Callable[[DiskStorage], None]
) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await leader_of(nodes)
        monkeypatch.setattr(DiskStorage, "sync", failing_sync)
        asyncio.get_running_loop().create_task(write(leader, 1, b"k", b"v"))
        with pytest.raises(StorageIOError, match="Input/output error"):
            await asyncio.wait_for(leader.wait_stopped(), 5)
