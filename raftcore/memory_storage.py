"""An in-memory :class:`raftcore.storage.Storage`: for tests and the simulated cluster.

"Durable" here means "held by this object": the simulated cluster models a crash by keeping a
:meth:`MemoryStorage.copy` of a node's storage and dropping everything else about the node.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftcore.raftpb_pb2 import ConfState, Entry, HardState, SnapshotMetadata
from raftcore.storage import CompactedError, StorageError, UnavailableError

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Hard state, a log suffix and one snapshot, all in memory."""

    def __init__(self, voters: Sequence[int] = ()) -> None:
        self._hard_state = HardState()
        self._snapshot_meta = SnapshotMetadata(conf_state=ConfState(voters=list(voters)))
        self._snapshot_data = b""
        # _entries[i] has index snapshot.index + 1 + i.
        self._entries: list[Entry] = []

    # -- read half ------------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        hs = HardState()
        hs.CopyFrom(self._hard_state)
        cs = ConfState()
        cs.CopyFrom(self._snapshot_meta.conf_state)
        return hs, cs

    def first_index(self) -> int:
        return self._snapshot_meta.index + 1

    def last_index(self) -> int:
        return self._snapshot_meta.index + len(self._entries)

    def term(self, index: int) -> int:
        base = self._snapshot_meta.index
        if index < base:
            raise CompactedError(f"index {index} is below the snapshot at {base}")
        if index == base:
            return self._snapshot_meta.term
        if index > self.last_index():
            raise UnavailableError(f"index {index} is above the last index {self.last_index()}")
        return self._entries[index - base - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        base = self._snapshot_meta.index
        if lo <= base:
            raise CompactedError(f"entries from {lo}: compacted up to {base}")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries up to {hi - 1}: last index is {self.last_index()}")
        selected = self._entries[lo - base - 1 : hi - base - 1]
        if max_bytes is None:
            return selected
        total = 0
        for n, entry in enumerate(selected):
            total += entry.ByteSize()
            if total > max_bytes and n > 0:
                return selected[:n]
        return selected

    def snapshot_metadata(self) -> SnapshotMetadata:
        meta = SnapshotMetadata()
        meta.CopyFrom(self._snapshot_meta)
        return meta

    def snapshot_size(self) -> int:
        return len(self._snapshot_data)

    def read_snapshot(self, offset: int, length: int) -> bytes:
        return self._snapshot_data[offset : offset + length]

    # -- write half -----------------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        if entries:
            first = entries[0].index
            base = self._snapshot_meta.index
            if first > self.last_index() + 1:
                raise StorageError(
                    f"append at {first} leaves a gap after the last index {self.last_index()}"
                )
            if first <= base:
                # The prefix is already covered by the snapshot: keep only what lies beyond it.
                entries = [e for e in entries if e.index > base]
                first = base + 1
            # A batch wholly covered by the snapshot truncates nothing (its entries are committed).
            if entries:
                del self._entries[first - base - 1 :]
                # Shared, not copied: nothing mutates an Entry once it is in a Ready.
                self._entries.extend(entries)
        if hard_state is not None:
            self._hard_state.CopyFrom(hard_state)

    def snapshot_writer(self, metadata: SnapshotMetadata) -> _MemorySnapshotWriter:
        return _MemorySnapshotWriter(self, metadata)

    def copy(self) -> MemoryStorage:
        """An independent copy: what a crashed node restarts from."""
        clone = MemoryStorage()
        clone._hard_state.CopyFrom(self._hard_state)
        clone._snapshot_meta.CopyFrom(self._snapshot_meta)
        clone._snapshot_data = self._snapshot_data
        clone._entries = list(self._entries)  # entries are never mutated in place
        return clone

    def _install_snapshot(self, metadata: SnapshotMetadata, data: bytes) -> None:
        base = self._snapshot_meta.index
        if metadata.index <= base:
            return
        keep_suffix = (
            metadata.index <= self.last_index() and self.term(metadata.index) == metadata.term
        )
        if keep_suffix:
            self._entries = self._entries[metadata.index - base :]
        else:
            self._entries = []
        self._snapshot_meta.CopyFrom(metadata)
        self._snapshot_data = data
        if self._hard_state.commit < metadata.index:
            self._hard_state.commit = metadata.index


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
