"""Storage failures that must stall and retry, not end the node (issue 14, bug 4).

A received snapshot chunk whose write fails (disk full) at a non-zero offset, and a snapshot the
replica takes of its own state that fails, are retried once the disk works again, as a failed
WAL write is; nothing is lost and the core is never left un-advanced.
"""

from __future__ import annotations

import pytest

from kvserver.storage import DiskStorage, StorageFullError
from raftcore import Ready, ReadyPersister, SnapshotChunk
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import SnapshotMetadata
from raftcore.storage import StorageError
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
        entries=entries(9, 9, term=1),
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
        for _ in range(5):
            try:
                c.settle(1)
            except StorageError:
                failures += 1  # the follower's snapshot failed; driving on must work
    assert failures > 0
    assert all(out.values for out in outcomes)  # the majority kept committing
    assert storage.snapshot_metadata().index == 0
    storage.failing = False
    c.settle()
    assert storage.snapshot_metadata().index > 0  # retried once the disk works again
    assert follower.machine.scan() == leader.machine.scan()
