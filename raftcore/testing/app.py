"""The recording application of the simulated cluster: it keeps every entry it applied.

Like 6.5840's test applier, the application's state *is* its applied log of commands
(``ENTRY_NORMAL`` with empty data, the leader's no-op, is recorded as ``b""``), so comparing
applications compares what each node applied at each index. A membership change
(``ENTRY_CONF_CHANGE``) is no command: its slot in the state holds ``b""`` too, and the change is
recorded beside it (:attr:`RecordingApp.conf_changes`), as a real application keeps its peers'
addresses apart from its data. Its snapshot is the whole applied log, encoded as a raftpb
``Message`` whose ``entries`` carry index, type and data (protobuf bytes, no pickle), so the
recorded changes survive a restore. The encoding of the entries is kept up to date as they are
applied (a repeated field's encoding is the concatenation of its elements'), so taking a
snapshot costs one copy, not a re-encoding of the whole log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.protobuf.message import DecodeError

from raftcore.membership import Membership
from raftcore.raftpb_pb2 import ENTRY_CONF_CHANGE, ConfChange, Entry, Message

__all__ = ["ApplyOrderError", "RecordingApp", "SnapshotFormatError"]


class ApplyOrderError(ValueError):
    """An entry was applied out of order (not exactly the next index)."""


class SnapshotFormatError(ValueError):
    """Snapshot bytes that this application did not write."""


class RecordingApp:
    """Applied commands by index, from 1 up to :attr:`applied_index`, with no gaps, and the
    membership changes among them."""

    def __init__(self) -> None:
        self._log: list[bytes] = []
        self._confs: dict[int, ConfChange] = {}
        self._encoded = bytearray()  # the ``entries`` field of the snapshot message so far
        self.applied_term = 0
        """Term of the entry at :attr:`applied_index` (0 before anything was applied)."""

    @property
    def applied_index(self) -> int:
        """Index of the last entry applied (or restored from a snapshot)."""
        return len(self._log)

    def get(self, index: int) -> bytes | None:
        """The command applied at ``index`` (``b""`` for a no-op or a membership change), or
        None if nothing was applied there yet."""
        if 1 <= index <= len(self._log):
            return self._log[index - 1]
        return None

    def commands(self) -> Sequence[bytes]:
        """All applied commands in index order (index 1 first)."""
        return tuple(self._log)

    @property
    def conf_changes(self) -> Mapping[int, ConfChange]:
        """The membership changes applied, by index (those a restored snapshot held too)."""
        return self._confs

    @property
    def membership(self) -> Membership | None:
        """The configuration the last applied change made (None before any change)."""
        if not self._confs:
            return None
        return Membership.of(self._confs[max(self._confs)].result)

    def apply(self, entry: Entry) -> None:
        """Apply the next committed entry; raises :class:`ApplyOrderError` on a gap or repeat."""
        if entry.index != len(self._log) + 1:
            raise ApplyOrderError(f"applying index {entry.index} after {len(self._log)}")
        self._record(entry)
        self._encoded += Message(
            entries=[Entry(index=entry.index, type=entry.type, data=entry.data)]
        ).SerializeToString()
        self.applied_term = entry.term

    def _record(self, entry: Entry) -> None:
        if entry.type == ENTRY_CONF_CHANGE:
            self._confs[entry.index] = ConfChange.FromString(entry.data)
            self._log.append(b"")
        else:
            self._log.append(entry.data)

    def snapshot(self) -> bytes:
        """Encode the whole applied log."""
        header = Message(index=len(self._log), log_term=self.applied_term)
        return header.SerializeToString() + bytes(self._encoded)

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot made by :meth:`snapshot` (empty bytes: nothing)."""
        msg = Message()
        if data:
            try:
                msg.ParseFromString(data)
            except DecodeError as exc:
                raise SnapshotFormatError(f"undecodable snapshot: {exc}") from exc
        if len(msg.entries) != msg.index or any(
            e.index != i + 1 for i, e in enumerate(msg.entries)
        ):
            raise SnapshotFormatError("snapshot entries are not 1..index in order")
        self._log = []
        self._confs = {}
        for entry in msg.entries:
            self._record(entry)
        self._encoded = bytearray(Message(entries=msg.entries).SerializeToString())
        self.applied_term = msg.log_term
