"""The one persistence sequence every runner uses for a Ready (simulated cluster and real node).

Snapshot chunks arrive over several Readys; one writer stays open across them and is committed
on the ``done`` chunk. A chunk at offset 0 always starts afresh (aborting any half-written
snapshot: the leader restarted the transfer, perhaps with a newer snapshot).
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

    def persist(self, rd: Ready) -> SnapshotMetadata | None:
        """Persist ``rd``'s snapshot chunks, then its entries and hard state (one ``save``).

        Returns the metadata of a snapshot installed by this call: the runner must then
        restore the application from ``storage.read_snapshot`` before applying
        ``rd.committed_entries``. Raises StorageError if a chunk does not continue the
        snapshot being written (nothing is written for it).
        """
        installed: SnapshotMetadata | None = None
        for chunk in rd.snapshot_chunks:
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
            writer.write(chunk.data)
            self._written += len(chunk.data)
            if chunk.done:
                writer.commit()
                self._writer = None
                installed = chunk.metadata
        if rd.hard_state is not None or rd.entries:
            self._storage.save(rd.hard_state, rd.entries)
        return installed
