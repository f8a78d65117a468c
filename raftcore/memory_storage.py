"""An in-memory :class:`raftcore.storage.Storage`: for tests and the simulated cluster.

The storage holds two images of the log and hard state: what was *written* (every save: what
the core reads back) and what was *synced* (every save up to the last sync: what survives a
crash). The simulated cluster models a crash by keeping a :meth:`MemoryStorage.copy` of a node's
storage, which holds the synced image only, as a disk keeps only what an fdatasync covered. A
snapshot commit is durable at once and makes every earlier save durable with it (the disk engine
writes the log it keeps into a fresh, synced segment). The contract's rules live in
:class:`raftcore.log_image.LogImage`; this class adds the snapshot's bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftcore.log_image import LogImage
from raftcore.raftpb_pb2 import ConfState, Entry, HardState, SnapshotMetadata
from raftcore.storage import StorageError

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Hard state, a log suffix and one snapshot, all in memory."""

    def __init__(self, voters: Sequence[int] = ()) -> None:
        self._image = LogImage(SnapshotMetadata(conf_state=ConfState(voters=list(voters))))
        self._synced = self._image.copy()  # what a crash keeps
        self._unsynced: list[tuple[HardState | None, list[Entry]]] = []  # saves since the sync
        self._snapshot_data = b""

    # -- read half ------------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        hs = HardState()
        hs.CopyFrom(self._image.hard_state)
        cs = ConfState()
        cs.CopyFrom(self._image.base.conf_state)
        return hs, cs

    def first_index(self) -> int:
        return self._image.first_index()

    def last_index(self) -> int:
        return self._image.last_index()

    def term(self, index: int) -> int:
        return self._image.term(index)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        return self._image.slice(lo, hi, max_bytes)

    def snapshot_metadata(self) -> SnapshotMetadata:
        meta = SnapshotMetadata()
        meta.CopyFrom(self._image.base)
        return meta

    def snapshot_size(self) -> int:
        return len(self._snapshot_data)

    def read_snapshot(self, offset: int, length: int) -> bytes:
        return self._snapshot_data[offset : offset + length]

    # -- write half -----------------------------------------------------------------------------

    def save(
        self, hard_state: HardState | None, entries: Sequence[Entry], *, sync: bool = True
    ) -> None:
        # Shared, not copied: nothing mutates an Entry once it is in a Ready.
        batch = self._image.to_append(entries)
        self._image.append(batch)
        saved: HardState | None = None
        if hard_state is not None:
            self._image.hard_state.CopyFrom(hard_state)
            saved = HardState()
            saved.CopyFrom(hard_state)
        self._unsynced.append((saved, batch))
        if sync:
            self.sync()

    def sync(self) -> None:
        synced = self._synced
        for hard_state, batch in self._unsynced:
            synced.append(synced.to_append(batch))
            if hard_state is not None:
                synced.hard_state.CopyFrom(hard_state)
        self._unsynced.clear()

    def snapshot_writer(self, metadata: SnapshotMetadata) -> _MemorySnapshotWriter:
        return _MemorySnapshotWriter(self, metadata)

    def copy(self) -> MemoryStorage:
        """An independent copy of what is synced: what a crashed node restarts from."""
        clone = MemoryStorage()
        clone._image = self._synced.copy()
        clone._synced = self._synced.copy()
        clone._snapshot_data = self._snapshot_data
        return clone

    def _install_snapshot(self, metadata: SnapshotMetadata, data: bytes) -> None:
        self.sync()  # the commit makes every save before it durable too (module docstring)
        if self._image.install(metadata):
            self._snapshot_data = data
        self._synced.install(metadata)


class _MemorySnapshotWriter:
    def __init__(self, storage: MemoryStorage, metadata: SnapshotMetadata) -> None:
        self._storage = storage
        self._metadata = SnapshotMetadata()
        self._metadata.CopyFrom(metadata)
        self._chunks: list[bytes] = []
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise StorageError("snapshot writer is closed")
        self._chunks.append(bytes(data))

    def commit(self) -> None:
        if self._closed:
            raise StorageError("snapshot writer is closed")
        self._closed = True
        self._storage._install_snapshot(self._metadata, b"".join(self._chunks))

    def abort(self) -> None:
        self._closed = True
        self._chunks.clear()
