"""The in-memory image of a node's durable Raft state, with the storage contract's rules.

:class:`LogImage` holds the hard state, the metadata of the snapshot in force and the log entries
after it, and applies the rules of :mod:`raftcore.storage` for reading (``term`` and ``entries``
bounds, the ``max_bytes`` limit), for appending (truncate-suffix on overwrite, no gaps, entries the
snapshot covers dropped) and for installing a snapshot (keep the suffix only if the log agrees at
its index; raise the commit to it).

Both storage engines build on it, so the rules exist once: :class:`raftcore.memory_storage.
MemoryStorage` adds the snapshot's bytes; ``kvserver.storage.DiskStorage`` makes every change
durable in its files first, then applies it here, and serves every read from here. The image holds
snapshot *metadata* only, never snapshot data, and does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftcore.raftpb_pb2 import Entry, HardState, SnapshotMetadata
from raftcore.storage import CompactedError, StorageError, UnavailableError

__all__ = ["LogImage", "check_consecutive"]


class LogImage:
    """Hard state, snapshot metadata, and the entries ``base.index + 1 .. last_index()``.

    ``base`` (the snapshot in force), ``hard_state`` and ``entries`` are public so that an engine
    can persist them and recovery can rebuild them; changes to the log go through :meth:`append`
    and :meth:`install`, which keep ``entries`` consistent with ``base``.
    """

    def __init__(self, base: SnapshotMetadata, hard_state: HardState | None = None) -> None:
        self.base = SnapshotMetadata()
        self.base.CopyFrom(base)
        self.hard_state = HardState()
        if hard_state is not None:
            self.hard_state.CopyFrom(hard_state)
        # entries[i] has index base.index + 1 + i; Entry objects are never mutated once stored.
        self.entries: list[Entry] = []

    def copy(self) -> LogImage:
        """An independent copy (the entry objects are shared: they are never mutated)."""
        clone = LogImage(self.base, self.hard_state)
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
        """Check a consecutive batch for :meth:`append` and return the part after the snapshot.

        Raises StorageError if the batch leaves a gap after the last index. Entries at or below
        the snapshot index are already covered: they are dropped. The batch's indexes are taken
        to be consecutive (the core only produces such batches); :func:`check_consecutive`
        verifies that for an engine that must reject bad input before persisting it.
        """
        if not entries:
            return []
        first = entries[0].index
        if first > self.last_index() + 1:
            raise StorageError(
                f"append at {first} leaves a gap after the last index {self.last_index()}"
            )
        if first > self.base.index:
            return list(entries)  # the usual case, copied without a Python-level loop
        return [entry for entry in entries if entry.index > self.base.index]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append a batch checked by :meth:`to_append`, truncating the log from its first index.

        The entry objects are stored as given, not copied: the caller must not mutate them later.
        """
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


def check_consecutive(entries: Sequence[Entry]) -> None:
    """Raise StorageError unless the indexes of ``entries`` are consecutive and increasing."""
    if not entries:
        return
    first = entries[0].index
    for offset, entry in enumerate(entries):
        if entry.index != first + offset:
            raise StorageError(
                f"batch is not consecutive: entry {offset} has index {entry.index}, "
                f"expected {first + offset}"
            )
