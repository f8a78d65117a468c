"""Shared helpers for the storage tests: building entries and comparing whole storage states."""

from __future__ import annotations

from pathlib import Path

from kvserver.storage import DiskStorage
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import ConfState, Entry, HardState, SnapshotMetadata
from raftcore.storage import Storage

__all__ = [
    "VOTERS",
    "Restartable",
    "State",
    "entries",
    "hard_state",
    "snapshot_meta",
    "state_of",
    "write_snapshot",
]

# (hard state, voters, snapshot index, snapshot term, snapshot data, [(index, term, data)])
State = tuple[
    tuple[int, int, int], tuple[int, ...], int, int, bytes, tuple[tuple[int, int, bytes], ...]
]


def entries(first: int, last: int, term: int, tag: bytes = b"") -> list[Entry]:
    """Entries ``first .. last`` of ``term``, each carrying distinguishable data."""
    return [
        Entry(index=i, term=term, data=tag + b"e%d-t%d" % (i, term)) for i in range(first, last + 1)
    ]


def hard_state(term: int, vote: int = 0, commit: int = 0) -> HardState:
    """A HardState."""
    return HardState(term=term, vote=vote, commit=commit)


def snapshot_meta(index: int, term: int, voters: tuple[int, ...] = (1, 2, 3)) -> SnapshotMetadata:
    """Snapshot metadata with a configuration."""
    return SnapshotMetadata(index=index, term=term, conf_state=ConfState(voters=list(voters)))


def write_snapshot(storage: Storage, meta: SnapshotMetadata, data: bytes, chunk: int = 7) -> None:
    """Stream ``data`` into a snapshot of ``storage`` in small chunks and commit it; on a
    failed write, abort it (as Replica._take_snapshot does) and re-raise."""
    writer = storage.snapshot_writer(meta)
    try:
        for start in range(0, len(data), chunk):
            writer.write(data[start : start + chunk])
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def state_of(storage: Storage) -> State:
    """Everything a storage exposes, as one comparable value."""
    hs, cs = storage.initial_state()
    meta = storage.snapshot_metadata()
    log = storage.entries(storage.first_index(), storage.last_index() + 1)
    return (
        (hs.term, hs.vote, hs.commit),
        tuple(cs.voters),
        meta.index,
        meta.term,
        storage.read_snapshot(0, storage.snapshot_size() + 1),
        tuple((e.index, e.term, e.data) for e in log),
    )


VOTERS = (1, 2, 3)


class Restartable:
    """A storage under test and a way to 'restart the node' on what it made durable."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._dir = tmp_path / "data"
        self.storage: Storage = self._open() if kind == "disk" else MemoryStorage(VOTERS)

    def _open(self) -> DiskStorage:
        return DiskStorage(self._dir, voters=VOTERS, segment_bytes=512)

    def restart(self) -> Storage:
        """Drop the storage object and reopen from its durable state (a copy, for memory)."""
        if isinstance(self.storage, DiskStorage):
            self.storage.close()
            self.storage = self._open()
        else:
            assert isinstance(self.storage, MemoryStorage)
            self.storage = self.storage.copy()
        return self.storage

    def close(self) -> None:
        """Release the directory, if any."""
        if isinstance(self.storage, DiskStorage):
            self.storage.close()
