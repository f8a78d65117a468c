"""The one persistence sequence every runner uses for a Ready (simulated cluster and real node).

Snapshot chunks arrive over several Readys; one writer stays open across them and is committed
on the ``done`` chunk. A chunk at offset 0 always starts afresh (aborting any half-written
snapshot: the leader restarted the transfer, perhaps with a newer snapshot).

A runner whose storage fails (disk full) persists the very same Ready again later: the core
hands each Ready out once. Persisting is made retry-safe for that case: the chunks of that Ready
written before the failure are not written twice, the chunk whose write failed is written again
(a failed ``SnapshotWriter.write`` leaves the snapshot as it was), and a snapshot it already
committed is still reported as installed by it.

One failure cannot be retried: losing the snapshot being received (its commit failed, or a chunk
written in part could not be cut back), for its earlier chunks came in earlier Readys and are gone.
The core already counts that snapshot as received (it answers the leader's last chunk as done in
this very Ready), so the Ready can never be persisted. ``persist`` then raises
:class:`SnapshotAbortedError` and forgets the Ready; the runner gives the Ready up and restarts
the core from storage in place (``RawNode.restart``), as a crash would, but nothing sent is
undone: none of that Ready left the node, and the snapshot was never reported done. The restarted
core holds no transfer, so it answers the leader's next chunk (a resend, at a non-zero offset) with
a reject at offset 0 and the leader sends the snapshot again from its first byte.
"""

from __future__ import annotations

from raftcore.raftpb_pb2 import SnapshotMetadata
from raftcore.ready import Ready
from raftcore.storage import SnapshotAbortedError, SnapshotWriter, Storage, StorageError

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
        snapshot being written (nothing is written for it). After any error but one, call it
        again with the same ``rd`` to finish the job. The one is SnapshotAbortedError: the
        snapshot being received was lost, and ``rd`` must be given up (module docstring).
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
                    self._writer = None
                self._writer = self._storage.snapshot_writer(chunk.metadata)
                self._written = 0
            writer = self._writer
            if writer is None or chunk.offset != self._written:
                raise StorageError(
                    f"snapshot chunk at offset {chunk.offset} does not continue the "
                    f"{self._written} bytes written"
                )
            try:
                # A failed write leaves the writer as it was (the Storage contract): the retry of
                # this Ready writes the same chunk again.
                writer.write(chunk.data)
            except SnapshotAbortedError:
                self._lose_snapshot()
                raise
            self._written += len(chunk.data)
            if chunk.done:
                self._writer = None  # commit closes it, whether it succeeds or not
                try:
                    writer.commit()
                except StorageError as exc:
                    self._lose_snapshot()
                    raise SnapshotAbortedError(
                        f"the received snapshot at index {chunk.metadata.index} is lost: {exc}"
                    ) from exc
                installed = chunk.metadata
            self._retry = (rd, n + 1, installed)
        if rd.hard_state is not None or rd.entries:
            self._storage.save(rd.hard_state, rd.entries, sync=sync and rd.must_sync)
        self._retry = None
        return installed

    def _lose_snapshot(self) -> None:
        self._writer = None
        self._written = 0
        self._retry = None
