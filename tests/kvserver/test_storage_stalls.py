"""Storage failures that must stall and retry, not end the node (issue 14, bug 4).

A received snapshot chunk whose write fails (disk full) at a non-zero offset, and a snapshot the
replica takes of its own state that fails, are retried once the disk works again, as a failed
WAL write is; nothing is lost and the core is never left un-advanced. A received snapshot that
is lost (its commit failed, or a partial chunk could not be cut back) is received again from
offset 0, and a restore from an installed snapshot that fails (a read error) is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from pathlib import Path

import pytest

from cluster.conf import free_ports
from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Result
from kvserver.node import Node, NodeConfig
from kvserver.replica import Replica
from kvserver.storage import DiskStorage, FileHandle, StorageFullError, StorageIOError
from kvserver.storage.snapfile import SnapshotFileWriter
from raftcore import Ready, ReadyPersister, SnapshotChunk
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import MSG_SNAPSHOT_RESPONSE, Message, SnapshotMetadata
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
            c.replicas[m.to].step([Message.FromString(m.SerializeToString())])
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


def _three_nodes(tmp_path: Path) -> dict[int, Node]:
    """Three unstarted nodes on free ports that snapshot often and retry storage quickly."""
    ports = free_ports(3)
    peers = {i + 1: ("127.0.0.1", ports[i]) for i in range(3)}
    return {
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


async def _node_snapshots_fail(tmp_path: Path, failing: dict[str, bool]) -> None:
    nodes = _three_nodes(tmp_path)
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
        assert await write(leader, rid + 1, b"after", b"v") == Result(err=Err.OK)
        assert all(n._storage_failure is None for n in nodes.values())
    finally:
        for node in nodes.values():
            await node.stop()


class SnapshotFaultFS(SimFileSystem):
    """A SimFileSystem whose faults hit only the snapshot files a DiskStorage writes.

    ``snapshot_limit``: a write that would take a temporary snapshot file past this many bytes
    writes what fits and raises ENOSPC. ``fail_truncates``: cutting such a file back raises EIO.
    ``fail_installs``: renaming one into place (the commit) raises EIO."""

    snapshot_limit: int | None = None
    fail_truncates = False
    fail_installs = False

    def create(self, path: str) -> FileHandle:
        handle = super().create(path)
        return (
            _SnapshotHandle(self, handle) if path.endswith(".tmp") and ".snap" in path else handle
        )

    def rename(self, src: str, dst: str) -> None:
        if self.fail_installs and dst.endswith(".snap"):
            self.tick()
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().rename(src, dst)


class _SnapshotHandle:
    def __init__(self, fs: SnapshotFaultFS, inner: FileHandle) -> None:
        self._fs = fs
        self._inner = inner
        self._size = 0

    def write(self, data: bytes) -> None:
        limit = self._fs.snapshot_limit
        if limit is not None and self._size + len(data) > limit:
            part = data[: max(0, limit - self._size)]
            self._inner.write(part)
            self._size += len(part)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._inner.write(data)
        self._size += len(data)

    def sync_data(self) -> None:
        self._inner.sync_data()

    def sync(self) -> None:
        self._inner.sync()

    def truncate(self, size: int) -> None:
        if self._fs.fail_truncates:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self._inner.truncate(size)
        self._size = size

    def close(self) -> None:
        self._inner.close()


def drive_ticking(c: Cluster, rounds: int) -> int:
    """Like ``drive``, with a tick per round (the leader retries unanswered snapshot chunks on
    heartbeats) and ``c.cut`` honoured; also checks that no replica reports a snapshot done
    that its storage does not hold."""
    failures = 0
    for _ in range(rounds):
        for r in c.replicas.values():
            r.tick()
            try:
                r.handle_ready(c.queue.extend)
            except StorageError:
                failures += 1
        queue, c.queue = c.queue, []
        for m in queue:
            if m.type == MSG_SNAPSHOT_RESPONSE and m.done and not m.reject:
                held = c.replicas[m.sender].storage.snapshot_metadata()
                assert held.index >= m.snapshot.index, "a snapshot reported done is not durable"
            if m.to not in c.cut and m.sender not in c.cut:
                c.replicas[m.to].step([Message.FromString(m.SerializeToString())])
    return failures


def lagging_follower_on(fs: SimFileSystem) -> tuple[Cluster, Replica, Replica]:
    """Three replicas, 3 on a DiskStorage over ``fs``, cut off while the leader's log moved on
    past a snapshot of several chunks: 3 can only catch up by receiving that snapshot."""
    c = Cluster(max_raft_state=300)
    follower = c.start(3, DiskStorage(DIR, voters=c.ids, fs=fs))  # type: ignore[arg-type]
    leader = c.elect(1)
    c.cut = {3}
    for n in range(60):
        w = Outcome()
        leader.propose(put(b"k%d" % (n % 20), b"v%d" % n, n + 1), w)
        c.settle()
        assert w.values == [Result(err=Err.OK)]
    assert leader.storage.snapshot_size() > 4 * 64  # several chunks of snapshot_chunk_bytes
    c.cut = set()
    return c, leader, follower


def assert_caught_up(c: Cluster, leader: Replica, follower: Replica, fs: SimFileSystem) -> None:
    for _ in range(200):
        if follower.applied_index == leader.applied_index:
            break
        assert drive_ticking(c, 1) == 0
    assert follower.applied_index == leader.applied_index
    assert follower.machine.scan() == leader.machine.scan()
    assert not follower.storage_failed
    installed = follower.storage.snapshot_metadata().index
    assert installed > 0
    reopened = DiskStorage(DIR, voters=c.ids, fs=fs.crash_image("drop"))
    assert reopened.snapshot_metadata().index == installed


@pytest.mark.parametrize("fault", ["commit", "truncate"])
def test_a_received_snapshot_lost_by_a_failed_commit_or_cut_back_is_received_again(
    fault: str,
) -> None:
    """The snapshot being received cannot be finished: its commit failed (here the rename that
    installs it), or a chunk written in part at a non-zero offset could not be cut back. The
    replica stalls; once the disk works it receives the snapshot again from its first byte."""
    fs = SnapshotFaultFS()
    c, leader, follower = lagging_follower_on(fs)
    if fault == "commit":
        fs.fail_installs = True
    else:
        fs.snapshot_limit = 150  # past the header and the first chunk: offset > 0
        fs.fail_truncates = True
    failures = drive_ticking(c, 60)
    assert failures > 0
    assert follower.storage.snapshot_metadata().index == 0
    fs.fail_installs = fs.fail_truncates = False
    fs.snapshot_limit = None
    assert_caught_up(c, leader, follower, fs)


class UnreadableSnapshotStorage(MemoryStorage):
    """Fails every snapshot read while ``failing`` is set, as an I/O error on its file would."""

    failing = False

    def read_snapshot(self, offset: int, length: int) -> bytes:
        if self.failing:
            raise StorageError("reading the snapshot: Input/output error")
        return super().read_snapshot(offset, length)


def test_a_snapshot_that_cannot_be_read_back_into_the_machine_stalls_and_is_retried() -> None:
    c = Cluster(max_raft_state=300)
    storage = UnreadableSnapshotStorage(c.ids)
    follower = c.start(3, storage)
    leader = c.elect(1)
    c.cut = {3}
    for n in range(60):
        leader.propose(put(b"k%d" % (n % 10), b"v%d" % n, n + 1), Outcome())
        c.settle()
    c.cut = set()
    storage.failing = True
    failures = drive_ticking(c, 60)  # no RaftError ("advance() the previous Ready")
    assert failures > 0
    assert storage.snapshot_metadata().index > 0  # installed, durable: only the restore fails
    assert follower.machine.scan() != leader.machine.scan()
    storage.failing = False
    for _ in range(200):
        if follower.applied_index == leader.applied_index:
            break
        assert drive_ticking(c, 1) == 0
    assert follower.machine.scan() == leader.machine.scan()
    assert not follower.storage_failed
    w = Outcome()
    leader.propose(put(b"after", b"x", 1000), w)
    drive_ticking(c, 5)
    assert w.values == [Result(err=Err.OK)] and follower.machine.get(b"after") == b"x"


@pytest.mark.parametrize("fault", ["commit", "restore"])
def test_a_node_that_cannot_install_a_received_snapshot_stalls_and_catches_up_later(
    fault: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real nodes: node 3 starts late and must catch up by snapshot. Its disk fails either the
    snapshot's commit (ENOSPC writing the file's trailer: the transfer is lost) or the read
    that restores the state machine from it (EIO, after the install). Node 3 stays up, logs one
    line, and once the disk works it catches up with the right data."""
    failing = {"on": False}
    slow_dir = str(tmp_path / "n3")
    if fault == "commit":
        real_finish = SnapshotFileWriter.finish

        def finish(self: SnapshotFileWriter, *, sync: bool) -> object:
            if failing["on"] and self.final_path.startswith(slow_dir):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_finish(self, sync=sync)

        monkeypatch.setattr(SnapshotFileWriter, "finish", finish)
    else:
        real_read = DiskStorage.read_snapshot

        def read_snapshot(self: DiskStorage, offset: int, length: int) -> bytes:
            if failing["on"] and str(self._dir).startswith(slow_dir):
                raise StorageIOError("reading the snapshot: Input/output error", errno.EIO)
            return real_read(self, offset, length)

        monkeypatch.setattr(DiskStorage, "read_snapshot", read_snapshot)
    caplog.set_level(logging.INFO, logger="kvserver.node")
    asyncio.run(asyncio.wait_for(_late_node_snapshot_fails(tmp_path, failing), 30))
    lines = [r.getMessage() for r in caplog.records if r.name == "kvserver.node"]
    assert len([m for m in lines if m.startswith("node2: storage failed")]) == 1, lines
    assert len([m for m in lines if m.startswith("node2: storage works again")]) == 1, lines
    assert not [m for m in lines if "fatal" in m]


async def _late_node_snapshot_fails(tmp_path: Path, failing: dict[str, bool]) -> None:
    nodes = _three_nodes(tmp_path)
    started = []
    try:
        for i in (1, 2):
            await nodes[i].start()
            started.append(nodes[i])
        leader = await leader_of({i: nodes[i] for i in (1, 2)})
        # 20 keys of 64 KiB: a snapshot of two chunks (Config.snapshot_chunk_bytes is 1 MiB),
        # so the chunk that fails is not at offset 0.
        for rid in range(1, 31):
            value = b"%d" % rid * (64 << 10)
            assert await write(leader, rid, b"k%d" % (rid % 20), value[: 64 << 10]) == Result(
                err=Err.OK
            )
        assert leader.status().SnapshotIndex > 0
        assert leader._storage is not None and leader._storage.snapshot_size() > 1 << 20
        late = nodes[3]
        failing["on"] = True
        await late.start()
        started.append(late)
        async with asyncio.timeout(5):
            while late._storage_failure is None:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # several retries (and transfers), all failing
        assert not late._stopped.done()  # type: ignore[union-attr]
        assert late.replica.applied_index < leader.replica.applied_index
        failing["on"] = False
        async with asyncio.timeout(5):
            while late.replica.applied_index < leader.replica.applied_index:
                await asyncio.sleep(0.01)
        assert late.status().SnapshotIndex > 0
        assert late.replica.machine.scan() == leader.replica.machine.scan()
        assert await write(leader, 100, b"after", b"v") == Result(err=Err.OK)
        async with asyncio.timeout(5):
            while late.replica.machine.get(b"after") != b"v":
                await asyncio.sleep(0.01)
        assert late._storage_failure is None and not late._stopped.done()  # type: ignore[union-attr]
    finally:
        for node in started:
            await node.stop()
