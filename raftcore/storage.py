"""The storage contract between the Raft core, the runner and the storage engines.

Theory of operation
-------------------
A node's durable state is three things: the hard state (term, vote, commit), the log, and at most
one snapshot that replaces the log prefix it covers. The core only *reads* storage (through the
read half of :class:`Storage`); it never writes. The runner (the simulated cluster, or the real node
in ``kvserver``) takes each ``Ready`` batch from the core and writes what it asks for through the
write half, durably, in one call, *before* it sends any message of that batch.

Indexes: the snapshot covers ``1 .. snapshot.index``; the log holds ``first_index() ..
last_index()`` where ``first_index() == snapshot.index + 1``. An empty log has ``last_index() ==
snapshot.index``. ``term(snapshot.index)`` is answerable (it is ``snapshot.term``), so the core can
always check the entry just before its first one.

Two implementations honour this contract: :class:`raftcore.memory_storage.MemoryStorage` (tests and
the simulated cluster, where "durable" means "in this object") and the write-ahead log in
``kvserver.storage``. Both must pass the same contract tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from raftcore.raftpb_pb2 import ConfState, Entry, HardState, SnapshotMetadata

__all__ = [
    "CompactedError",
    "SnapshotAbortedError",
    "SnapshotWriter",
    "Storage",
    "StorageError",
    "UnavailableError",
]


class StorageError(Exception):
    """Base class of every error the storage contract defines."""


class CompactedError(StorageError):
    """The requested index is at or below the snapshot: its entry was compacted away."""


class UnavailableError(StorageError):
    """The requested index is above ``last_index()``."""


class SnapshotAbortedError(StorageError):
    """The snapshot being written was thrown away (its writer is closed): what was written of it
    is lost, and only writing it again from its first byte can install it."""


class SnapshotWriter(Protocol):
    """Receives one snapshot's bytes in order; nothing is visible until :meth:`commit`."""

    def write(self, data: bytes) -> None:
        """Append ``data`` to the snapshot being written.

        A failed write (StorageError, e.g. a full disk) leaves the snapshot as it was before
        the call: the caller may write the same ``data`` again once the disk recovers, or abort.
        Only if that cannot be done (the partial write cannot be cut off) does the writer abort
        itself and raise :class:`SnapshotAbortedError`.
        """
        ...

    def commit(self) -> None:
        """Durably install the snapshot, then compact the log.

        Afterwards ``snapshot_metadata()`` is this snapshot's metadata. Log entries after
        ``metadata.index`` are kept only if the log holds an entry at ``metadata.index`` whose term
        is ``metadata.term`` (the usual case for a snapshot the application took itself); otherwise
        the whole log is discarded (a leader's snapshot that the local log contradicts). Entries at
        or below ``metadata.index`` are always dropped, and their memory released. The hard state's
        commit is raised to ``metadata.index`` if it was lower. A snapshot older than the current
        one is ignored (committing it changes nothing).

        The writer is closed afterwards, whatever happens: a failed commit (StorageError)
        installed nothing, and the snapshot must be written again from its first byte.
        """
        ...

    def abort(self) -> None:
        """Throw away what was written; the previous snapshot stays in force."""
        ...


class Storage(Protocol):
    """A node's durable Raft state. Read half for the core; write half for the runner."""

    # -- read half: what the core may call ------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and the configuration to restart from."""
        ...

    def first_index(self) -> int:
        """Index of the first entry in the log: ``snapshot_metadata().index + 1``."""
        ...

    def last_index(self) -> int:
        """Index of the last entry in the log, or the snapshot's index if the log is empty."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; valid for ``snapshot index .. last_index()``.

        Raises :class:`CompactedError` below the snapshot index and :class:`UnavailableError` above
        ``last_index()``.
        """
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``lo .. hi - 1`` in order.

        With ``max_bytes``, stops before the total serialized size would pass it, but always returns
        at least one entry when ``lo < hi``. Raises :class:`CompactedError` if ``lo`` is at or below
        the snapshot index and :class:`UnavailableError` if ``hi > last_index() + 1``.
        """
        ...

    def snapshot_metadata(self) -> SnapshotMetadata:
        """Metadata of the snapshot in force (index 0, term 0 when there is none)."""
        ...

    def snapshot_size(self) -> int:
        """Size in bytes of the snapshot data in force (0 when there is none)."""
        ...

    def read_snapshot(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of the snapshot data in force, from ``offset``."""
        ...

    # -- write half: what the runner calls with a Ready's contents -------------------------------

    def save(
        self, hard_state: HardState | None, entries: Sequence[Entry], *, sync: bool = True
    ) -> None:
        """Durably persist a batch: entries first, then the hard state, in one sync.

        ``entries`` are consecutive. If the first one's index is at or below ``last_index()``, the
        log is truncated from that index before appending (a follower overwriting a conflicting
        tail). Appending past ``last_index() + 1`` is a contract violation (``StorageError``).
        ``hard_state`` None means unchanged. When this returns, everything is durable: a crash
        afterwards loses none of it.

        ``sync=False`` skips the sync. A crash may then lose this save, but never anything
        synced before it, and the next synced save or :meth:`sync` makes it durable too. It is
        for a Ready whose ``must_sync`` is False (only the commit index changed), or for a
        runner that calls :meth:`sync` itself before acting on the Ready.
        """
        ...

    def sync(self) -> None:
        """Make every save so far durable. It touches no in-memory state, so a runner may call
        it on another thread while its loop only reads from storage (no save in between). A
        failure is final: storage refuses further writes and the node must restart, recovering
        what is durable (after a failed sync the kernel may have dropped the unsynced pages)."""
        ...

    def snapshot_writer(self, metadata: SnapshotMetadata) -> SnapshotWriter:
        """Start writing a snapshot (the application's own, or one received from the leader)."""
        ...
