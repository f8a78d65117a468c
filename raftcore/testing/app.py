"""The recording application of the simulated cluster: it keeps every entry it applied.

Like 6.5840's test applier, the application's state *is* its applied log (``ENTRY_NORMAL`` with
empty data, the leader's no-op, is recorded as ``b""``), so comparing applications compares what
each node applied at each index. Its snapshot is that whole log, encoded as a raftpb ``Message``
whose ``entries`` carry index and data (protobuf bytes, no pickle). The encoding of the entries
is kept up to date as they are applied (a repeated field's encoding is the concatenation of its
elements'), so taking a snapshot costs one copy, not a re-encoding of the whole log.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import DecodeError

from raftcore.raftpb_pb2 import Entry, Message

__all__ = ["ApplyOrderError", "RecordingApp", "SnapshotFormatError"]


class ApplyOrderError(ValueError):
    """An entry was applied out of order (not exactly the next index)."""


class SnapshotFormatError(ValueError):
    """Snapshot bytes that this application did not write."""


class RecordingApp:
    """Applied entries by index, from 1 up to :attr:`applied_index`, with no gaps."""

    def __init__(self) -> None:
        self._log: list[bytes] = []
        self._encoded = bytearray()  # the ``entries`` field of the snapshot message so far
        self.applied_term = 0
        """Term of the entry at :attr:`applied_index` (0 before anything was applied)."""

    @property
    def applied_index(self) -> int:
        """Index of the last entry applied (or restored from a snapshot)."""
        return len(self._log)

    def get(self, index: int) -> bytes | None:
        """The data applied at ``index``, or None if nothing was applied there yet."""
        if 1 <= index <= len(self._log):
            return self._log[index - 1]
        return None

    def commands(self) -> Sequence[bytes]:
        """All applied data in index order (index 1 first)."""
        return tuple(self._log)

    def apply(self, entry: Entry) -> None:
        """Apply the next committed entry; raises :class:`ApplyOrderError` on a gap or repeat."""
        if entry.index != len(self._log) + 1:
            raise ApplyOrderError(f"applying index {entry.index} after {len(self._log)}")
        self._log.append(entry.data)
        self._encoded += Message(
            entries=[Entry(index=entry.index, data=entry.data)]
        ).SerializeToString()
        self.applied_term = entry.term

    def snapshot(self) -> bytes:
        """Encode the whole applied log."""
        header = Message(index=len(self._log), log_term=self.applied_term)
        return header.SerializeToString() + bytes(self._encoded)

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot made by :meth:`snapshot` (empty bytes: nothing)."""
        if not data:
            self._log = []
            self._encoded = bytearray()
            self.applied_term = 0
            return
        try:
            msg = Message.FromString(data)
        except DecodeError as exc:
            raise SnapshotFormatError(f"undecodable snapshot: {exc}") from exc
        log = [e.data for e in msg.entries]
        if len(log) != msg.index or any(e.index != i + 1 for i, e in enumerate(msg.entries)):
            raise SnapshotFormatError("snapshot entries are not 1..index in order")
        self._log = log
        self._encoded = bytearray(Message(entries=msg.entries).SerializeToString())
        self.applied_term = msg.log_term
