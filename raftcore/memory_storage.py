"""An in-memory :class:`raftcore.storage.Storage`: for tests and the simulated cluster.

"Durable" here means "held by this object": the simulated cluster models a crash by keeping a
:meth:`MemoryStorage.copy` of a node's storage and dropping everything else about the node. The
copy keeps the commit index of the last synced save only, as a disk would after a crash. The
contract's rules live in :class:`raftcore.log_image.LogImage`; this class adds the snapshot's bytes.
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
        self._snapshot_data = b""
        # The commit index a crash keeps: saves with sync=False may raise the live one only.
        self._durable_commit = 0

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
        self._image.append(self._image.to_append(entries))
        if hard_state is not None:
            self._image.hard_state.CopyFrom(hard_state)
        if sync:
            self.sync()

    def sync(self) -> None:
        # Only the commit index is modelled as losable: unsynced entries survive a crash here.
        self._durable_commit = self._image.hard_state.commit

    def snapshot_writer(self, metadata: SnapshotMetadata) -> _MemorySnapshotWriter:
        return _MemorySnapshotWriter(self, metadata)

    def copy(self) -> MemoryStorage:
        """An independent copy: what a crashed node restarts from."""
        clone = MemoryStorage()
        clone._image = self._image.copy()
        clone._image.hard_state.commit = clone._durable_commit = self._durable_commit
        clone._snapshot_data = self._snapshot_data
        return clone

    def _install_snapshot(self, metadata: SnapshotMetadata, data: bytes) -> None:
        if self._image.install(metadata):
            self._snapshot_data = data
        # The snapshot itself proves its index committed, whatever the WAL kept.
        self._durable_commit = max(self._durable_commit, metadata.index)


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
