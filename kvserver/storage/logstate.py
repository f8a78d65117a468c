"""The in-memory image of a node's durable Raft state, with the contract's read and update rules.

:class:`LogState` holds the hard state, the metadata of the snapshot in force and the log entries
after it, and applies the storage contract's rules for appending (truncate-suffix on overwrite, no
gaps) and for installing a snapshot (keep the suffix only if the log agrees at its index).
Recovery replays the write-ahead log into one; the disk storage then serves every read from it.

Why the entries live in memory rather than behind an index of file offsets: the Raft core reads the
recent log constantly (replication, commit, apply), and a snapshot bounds how much is held. Serving
from memory makes every read free of system calls and of failure modes, and keeps the files
append-only. The cost, the entries since the last snapshot, is what an operator tunes with the
snapshot interval.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftcore.raftpb_pb2 import Entry, HardState, SnapshotMetadata
from raftcore.storage import CompactedError, StorageError, UnavailableError

__all__ = ["LogState"]


class LogState:
    """Hard state, snapshot metadata, and the entries ``base.index + 1 .. last_index()``."""

    def __init__(self, base: SnapshotMetadata, hard_state: HardState | None = None) -> None:
        self.base = SnapshotMetadata()
        self.base.CopyFrom(base)
        self.hard_state = HardState()
        if hard_state is not None:
            self.hard_state.CopyFrom(hard_state)
        # entries[i] has index base.index + 1 + i; Entry objects are never mutated once stored.
        self.entries: list[Entry] = []

    def copy(self) -> LogState:
        """An independent copy (the entry objects are shared: they are never mutated)."""
        clone = LogState(self.base, self.hard_state)
        clone.entries = list(self.entries)
        return clone

    # -- reads ----------------------------------------------------------------------------------

    def first_index(self) -> int:
        """Index of the first entry: the snapshot's index + 1."""
        return self.base.index + 1

    def last_index(self) -> int:
        """Index of the last entry, or the snapshot's index when the log is empty."""
        return self.base.index + len(self.entries)

    def term(self, index: int) -> int:
        """Term at ``index`` (snapshot index .. last index), as the contract specifies."""
        base = self.base.index
        if index < base:
            raise CompactedError(f"index {index} is below the snapshot at {base}")
        if index == base:
            return self.base.term
        if index > self.last_index():
            raise UnavailableError(f"index {index} is above the last index {self.last_index()}")
        return self.entries[index - base - 1].term

    def slice(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        """Entries ``lo .. hi - 1``, size-limited as the contract specifies."""
        base = self.base.index
        if lo <= base:
            raise CompactedError(f"entries from {lo}: compacted up to {base}")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries up to {hi - 1}: last index is {self.last_index()}")
        selected = self.entries[lo - base - 1 : hi - base - 1]
        if max_bytes is None:
            return selected
        total = 0
        for n, entry in enumerate(selected):
            total += entry.ByteSize()
            if total > max_bytes and n > 0:
                return selected[:n]
        return selected

    # -- updates --------------------------------------------------------------------------------

    def to_append(self, entries: Sequence[Entry]) -> list[Entry]:
        """Check a batch for :meth:`append` and return the part of it after the snapshot.

        Raises StorageError if the indexes are not consecutive or the batch leaves a gap after the
        last index. Entries at or below the snapshot index are already covered: they are dropped.
        """
        if not entries:
            return []
        first = entries[0].index
        for offset, entry in enumerate(entries):
            if entry.index != first + offset:
                raise StorageError(
                    f"batch is not consecutive: entry {offset} has index {entry.index}, "
                    f"expected {first + offset}"
                )
        if first > self.last_index() + 1:
            raise StorageError(
                f"append at {first} leaves a gap after the last index {self.last_index()}"
            )
        return [entry for entry in entries if entry.index > self.base.index]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append a batch checked by :meth:`to_append`, truncating the log from its first index."""
        if entries:
            del self.entries[entries[0].index - self.base.index - 1 :]
            self.entries.extend(entries)

    def install(self, metadata: SnapshotMetadata) -> bool:
        """Make ``metadata`` the snapshot in force; False (and no change) if it is not newer.

        Keeps the entries after it only if the log holds its index with its term; raises the hard
        state's commit to its index.
        """
        base = self.base.index
        if metadata.index <= base:
            return False
        keep_suffix = (
            metadata.index <= self.last_index() and self.term(metadata.index) == metadata.term
        )
        self.entries = self.entries[metadata.index - base :] if keep_suffix else []
        self.base.CopyFrom(metadata)
        self.hard_state.commit = max(self.hard_state.commit, metadata.index)
        return True
