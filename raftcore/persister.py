"""The one persistence sequence every runner uses for a Ready (simulated cluster and real node).

Snapshot chunks arrive over several Readys; one writer stays open across them and is committed
on the ``done`` chunk. A chunk at offset 0 always starts afresh (aborting any half-written
snapshot: the leader restarted the transfer, perhaps with a newer snapshot).

A runner whose storage fails (disk full) persists the very same Ready again later: the core
hands each Ready out once. Persisting is made retry-safe for that case: the chunks of that Ready
written before the failure are not written twice, the chunk whose write failed is written again
(a failed ``SnapshotWriter.write`` leaves the snapshot as it was), and a snapshot it already
committed is still reported as installed by it.
"""

from __future__ import annotations

from raftcore.raftpb_pb2 import SnapshotMetadata
from raftcore.ready import Ready
from raftcore.storage import SnapshotWriter, Storage, StorageError

__all__ = ["ReadyPersister"]


class ReadyPersister:
    """Writes a Ready's durable parts to ``storage`` in the order the contract requires."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._writer: SnapshotWriter | None = None
        self._written = 0
        # The Ready whose persist raised, how many of its chunks were written, what it installed.
        self._retry: tuple[Ready, int, SnapshotMetadata | None] | None = None

    def persist(self, rd: Ready, *, sync: bool = True) -> SnapshotMetadata | None:
        """Persist ``rd``'s snapshot chunks, then its entries and hard state (one ``save``).

        ``sync`` False writes the entries and hard state without syncing them even when
        ``rd.must_sync``: the caller then calls ``storage.sync()`` before acting on ``rd``.

        Returns the metadata of a snapshot installed by this call: the runner must then
        restore the application from ``storage.read_snapshot`` before applying
        ``rd.committed_entries``. Raises StorageError if a chunk does not continue the
        snapshot being written (nothing is written for it). After any error, call it again with
        the same ``rd`` to finish the job.
        """
        done_chunks = 0
        installed: SnapshotMetadata | None = None
        if self._retry is not None and self._retry[0] is rd:
            _, done_chunks, installed = self._retry
        self._retry = (rd, done_chunks, installed)
        for n, chunk in enumerate(rd.snapshot_chunks):
            if n < done_chunks:
                continue
            if chunk.offset == 0:
                if self._writer is not None:
                    self._writer.abort()
                self._writer = self._storage.snapshot_writer(chunk.metadata)
                self._written = 0
            writer = self._writer
            if writer is None or chunk.offset != self._written:
                raise StorageError(
                    f"snapshot chunk at offset {chunk.offset} does not continue the "
                    f"{self._written} bytes written"
                )
            # A failed write leaves the writer as it was (the Storage contract): the retry of
            # this Ready writes the same chunk again.
            writer.write(chunk.data)
            self._written += len(chunk.data)
            if chunk.done:
                writer.commit()
                self._writer = None
                installed = chunk.metadata
            self._retry = (rd, n + 1, installed)
        if rd.hard_state is not None or rd.entries:
            self._storage.save(rd.hard_state, rd.entries, sync=sync and rd.must_sync)
        self._retry = None
        return installed
