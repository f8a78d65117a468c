"""Property test: random appends, tail overwrites, snapshots, restarts, crashes, full disks.

The model is MemoryStorage (itself held to the same contract tests). After every step the disk
storage must expose exactly the model's state; a restart (clean, or a power cut under any model of
unsynced bytes) must change nothing, since every step was acknowledged; a save or snapshot that
fails on a full disk or a failing sync must change nothing either, and writes must work after it.
"""

from __future__ import annotations

import errno
import shutil
import tempfile

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kvserver.storage import DiskStorage, OsFileSystem, StorageFullError, StorageIOError
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Entry, HardState
from tests.storage.helpers import snapshot_meta, state_of, write_snapshot
from tests.storage.simfs import CRASH_MODES, SimFileSystem

VOTERS = (1, 2, 3)


class StorageMachine(RuleBasedStateMachine):
    """DiskStorage on the simulated file system, against MemoryStorage."""

    def __init__(self) -> None:
        super().__init__()
        self.model = MemoryStorage(VOTERS)
        self.fs = SimFileSystem()
        self.dir = "/data"
        self.disk = self.open()
        self.term = 1

    def open(self) -> DiskStorage:
        return DiskStorage(self.dir, voters=VOTERS, segment_bytes=256, fs=self.fs)

    @rule(
        back=st.integers(0, 6),
        count=st.integers(0, 12),
        bump_term=st.booleans(),
        size=st.integers(0, 40),
    )
    def append(self, back: int, count: int, bump_term: bool, size: int) -> None:
        """Append, or overwrite the tail from up to ``back`` entries before its end."""
        first = max(self.model.first_index(), self.model.last_index() + 1 - back)
        self.term += bump_term
        batch = [
            Entry(index=i, term=self.term, data=bytes([i % 256]) * size)
            for i in range(first, first + count)
        ]
        for storage in (self.model, self.disk):
            storage.save(None, batch)

    @rule(vote=st.integers(0, 3), commit_back=st.integers(0, 5))
    def set_hard_state(self, vote: int, commit_back: int) -> None:
        hs = HardState(
            term=self.term, vote=vote, commit=max(0, self.model.last_index() - commit_back)
        )
        for storage in (self.model, self.disk):
            storage.save(hs, [])

    @rule(back=st.integers(-3, 8), agree=st.booleans(), size=st.integers(0, 300))
    def compact(self, back: int, agree: bool, size: int) -> None:
        """A snapshot near the end of the log that agrees with it, or (a leader's) does not."""
        index = max(0, self.model.last_index() - back)
        if agree and self.model.first_index() - 1 <= index <= self.model.last_index():
            term = self.model.term(index)
        else:
            term = self.term + 1
        data = bytes([index % 256]) * size
        for storage in (self.model, self.disk):
            write_snapshot(storage, snapshot_meta(index, term), data, chunk=64)

    @rule(room=st.integers(0, 300), count=st.integers(1, 8), snapshot=st.booleans())
    def full_disk(self, room: int, count: int, snapshot: bool) -> None:
        """A save or a snapshot with only ``room`` bytes free: it succeeds or changes nothing."""
        self.fs.capacity = self.fs.used() + room
        try:
            if snapshot:
                meta = snapshot_meta(self.model.last_index() + 1, self.term + 1)
                write_snapshot(self.disk, meta, b"z" * 100)
                write_snapshot(self.model, meta, b"z" * 100)
            else:
                self.append_batch(count)
        except StorageFullError:
            event("refused: disk full")
        finally:
            self.fs.capacity = None

    @rule(count=st.integers(1, 8))
    def failing_sync(self, count: int) -> None:
        """A save whose sync fails: it raises and changes nothing, or (real disk) succeeds."""
        self.fs.fail_syncs = [errno.EIO]
        try:
            self.append_batch(count)
        except StorageIOError:
            event("refused: sync failed")
        finally:
            self.fs.fail_syncs = []

    def append_batch(self, count: int) -> None:
        """Append ``count`` entries to the disk, then (if that succeeded) to the model."""
        first = self.model.last_index() + 1
        batch = [Entry(index=i, term=self.term, data=b"f") for i in range(first, first + count)]
        self.disk.save(None, batch)
        self.model.save(None, batch)

    @rule()
    def restart(self) -> None:
        self.disk.close()
        self.disk = self.open()

    @rule(mode=st.sampled_from(CRASH_MODES))
    def power_cut(self, mode: str) -> None:
        self.fs = self.fs.crash_image(mode)  # type: ignore[arg-type]
        self.disk = self.open()

    @invariant()
    def same_state_as_the_model(self) -> None:
        assert state_of(self.disk) == state_of(self.model)
        meta = self.disk.snapshot_metadata()
        assert self.disk.entries_in_memory() == self.disk.last_index() - meta.index

    def teardown(self) -> None:
        self.disk.close()


class RealDiskStorageMachine(StorageMachine):
    """The same, on the real file system in a temporary directory (restarts only, no power cuts)."""

    def open(self) -> DiskStorage:
        if not hasattr(self, "tmp"):
            self.tmp = tempfile.mkdtemp(prefix="raftkv-storage-")
        return DiskStorage(self.tmp, voters=VOTERS, segment_bytes=256, fs=OsFileSystem())

    def power_cut(self, mode: str) -> None:
        self.restart()

    def teardown(self) -> None:
        super().teardown()
        shutil.rmtree(self.tmp, ignore_errors=True)


TestStorageAgainstModel = StorageMachine.TestCase
TestStorageAgainstModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)

TestRealDiskStorageAgainstModel = RealDiskStorageMachine.TestCase
TestRealDiskStorageAgainstModel.settings = settings(
    max_examples=15, stateful_step_count=25, deadline=None
)
