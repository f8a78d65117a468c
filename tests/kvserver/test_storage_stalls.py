"""Storage failures that must stall and retry, not end the node (issue 14, bug 4).

A received snapshot chunk whose write fails (disk full) at a non-zero offset, and a snapshot the
replica takes of its own state that fails, are retried once the disk works again, as a failed
WAL write is; nothing is lost and the core is never left un-advanced.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from pathlib import Path

import pytest

from kvserver.cli_run import free_ports
from kvserver.kvcommand_pb2 import Result
from kvserver.node import Node, NodeConfig
from kvserver.state_machine import OK
from kvserver.storage import DiskStorage, StorageFullError
from raftcore import Ready, ReadyPersister, SnapshotChunk
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Message, SnapshotMetadata
from raftcore.storage import StorageError
from tests.kvserver.test_node import leader_of, write
from tests.kvserver.test_replica import Cluster, Outcome, put
from tests.storage.helpers import entries, hard_state, snapshot_meta, state_of
from tests.storage.simfs import SimFileSystem

DIR = "/data"


def test_a_snapshot_chunk_failing_at_a_nonzero_offset_is_written_again_once_space_is_back() -> None:
    fs = SimFileSystem()
    storage = DiskStorage(DIR, voters=(1, 2, 3), fs=fs)
    storage.save(hard_state(1), entries(1, 3, term=1))
    persister = ReadyPersister(storage)
    meta = snapshot_meta(8, 1)
    first = Ready(snapshot_chunks=[SnapshotChunk(meta, 0, b"a" * 300, False)])
    assert persister.persist(first) is None
    fs.capacity = fs.used() + 100  # the next chunk is written in part, then ENOSPC
    rd = Ready(
        snapshot_chunks=[SnapshotChunk(meta, 300, b"b" * 300, False)],
        entries=entries(4, 4, term=1),
    )
    with pytest.raises(StorageFullError):
        persister.persist(rd)
    with pytest.raises(StorageFullError):
        persister.persist(rd)  # still full: the same Ready fails the same way
    fs.capacity = None
    assert persister.persist(rd) is None
    done = Ready(snapshot_chunks=[SnapshotChunk(meta, 600, b"c" * 300, True)])
    assert persister.persist(done) == meta
    assert storage.read_snapshot(0, 1000) == b"a" * 300 + b"b" * 300 + b"c" * 300
    reopened = DiskStorage(DIR, voters=(1, 2, 3), fs=fs.crash_image("drop"))
    assert state_of(reopened)[2] == 8
    assert reopened.read_snapshot(0, 1000) == storage.read_snapshot(0, 1000)


class SnapshotlessStorage(MemoryStorage):
    """Refuses to start a snapshot while ``failing`` is set, as a full disk would."""

    failing = False

    def snapshot_writer(self, metadata: SnapshotMetadata):  # type: ignore[no-untyped-def]
        if self.failing:
            raise StorageError("no space left on device (snapshot)")
        return super().snapshot_writer(metadata)


def drive(c: Cluster, rounds: int) -> int:
    """Run ``rounds`` of ``c`` like its ``settle``, but a replica whose storage fails only
    stalls (as a node does); returns how many storage failures were met."""
    failures = 0
    for _ in range(rounds):
        for r in c.replicas.values():
            try:
                r.handle_ready(c.queue.extend)
            except StorageError:
                failures += 1
        queue, c.queue = c.queue, []
        for m in queue:
            c.replicas[m.to].node.step(Message.FromString(m.SerializeToString()))
    return failures


def test_a_failing_snapshot_of_the_replicas_own_state_is_retried_and_never_kills_it() -> None:
    c = Cluster(max_raft_state=2000)
    storage = SnapshotlessStorage(c.ids)
    follower = c.start(2, storage)
    leader = c.elect(1)
    storage.failing = True
    failures = 0
    outcomes = [Outcome() for _ in range(40)]
    for i, out in enumerate(outcomes):
        leader.propose(put(b"k%d" % (i % 5), b"v" * 100, i + 1), out)
        failures += drive(c, 5)
    assert failures > 0  # the follower's snapshots failed, and driving it on raised no RaftError
    assert all(out.values for out in outcomes)  # the majority kept committing
    assert storage.snapshot_metadata().index == 0
    storage.failing = False
    assert drive(c, 50) == 0
    assert storage.snapshot_metadata().index > 0  # retried once the disk works again
    assert follower.machine.scan() == leader.machine.scan()


def test_a_node_whose_snapshots_fail_stalls_and_recovers_instead_of_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same at the node: the snapshot fails inside the finish of a synced Ready (the
    fdatasync thread's callback), and on a follower after a commit-only Ready. The node logs
    the storage failure, keeps running, and snapshots once the disk works again."""
    failing = {"on": True}
    real_writer = DiskStorage.snapshot_writer

    def full_writer(self: DiskStorage, metadata: SnapshotMetadata) -> object:
        if failing["on"]:
            raise StorageFullError("writing a snapshot: the disk is full", errno.ENOSPC)
        return real_writer(self, metadata)

    monkeypatch.setattr(DiskStorage, "snapshot_writer", full_writer)
    asyncio.run(asyncio.wait_for(_node_snapshots_fail(tmp_path, failing), 30))


async def _node_snapshots_fail(tmp_path: Path, failing: dict[str, bool]) -> None:
    ports = free_ports(3)
    peers = {i + 1: ("127.0.0.1", ports[i]) for i in range(3)}
    nodes = {
        i: Node(
            NodeConfig(
                node_id=i,
                peers=peers,
                data_dir=tmp_path / f"n{i}",
                tick_ms=5,
                max_raft_state=4096,
                storage_retry_s=0.05,
            )
        )
        for i in peers
    }
    for node in nodes.values():
        await node.start()
    try:
        leader = await leader_of(nodes)
        rid = 0
        async with asyncio.timeout(10):
            # Write until every node's log outgrew max_raft_state and its snapshot failed (a
            # write may then time out: a node whose storage fails stalls).
            while any(n._storage_failure is None for n in nodes.values()):
                rid += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(write(leader, rid, b"k%d" % (rid % 3), b"v" * 500), 1)
        await asyncio.sleep(0.3)  # several retries, all failing
        for node in nodes.values():
            assert not node._stopped.done()  # type: ignore[union-attr]
            assert node.status().SnapshotIndex == 0
        failing["on"] = False
        async with asyncio.timeout(5):
            while any(n.status().SnapshotIndex == 0 for n in nodes.values()):
                await asyncio.sleep(0.02)
        leader = await leader_of(nodes)
        assert await write(leader, rid + 1, b"after", b"v") == Result(err=OK)
        assert all(n._storage_failure is None for n in nodes.values())
    finally:
        for node in nodes.values():
            await node.stop()
