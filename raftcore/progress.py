"""The leader's bookkeeping for one follower: how far it matches and how to feed it.

Theory of operation
-------------------
``match`` is the highest index known replicated on the follower; ``next`` the next index to send.
A follower is in one of three modes:

* PROBE: the leader does not know where the logs match. It sends one MSG_APPEND and then pauses
  (``probe_sent``) until a reply or a heartbeat response, stepping ``next`` back on each rejection
  (fast back-up: the reply names a conflicting term so a whole term is skipped per round trip).
* REPLICATE: logs match at ``match``. The leader streams MSG_APPENDs without waiting, advancing
  ``next`` optimistically, and records each message's last index in ``inflights``; at
  ``max_inflight`` unacknowledged messages, or ``max_inflight_bytes`` of them, it pauses. An
  acknowledgement frees the slots it covers; a heartbeat response to a paused leader frees the
  oldest one (its message may be lost), so a silent follower gets at most one append per
  heartbeat. A rejection, or the runner reporting the follower unreachable, drops back to PROBE.
  The byte bound is flow control: a follower that stops answering holds back at most that much
  of the leader's output, whatever the size of the entries.
* SNAPSHOT: the entries the follower needs were compacted. The leader streams the snapshot in
  chunks, one in flight at a time (``snap_offset`` is what the follower acknowledged), retrying
  from the acknowledged offset when a chunk or its reply is lost; when the last chunk is
  acknowledged the follower matches at the snapshot's index and goes back to PROBE.
"""

from __future__ import annotations

import enum
from collections import deque

from raftcore.raftpb_pb2 import SnapshotMetadata

__all__ = ["Progress", "ProgressState"]


class ProgressState(enum.Enum):
    """How the leader currently feeds a follower."""

    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    """Replication state of one follower, as seen by the leader."""

    __slots__ = (
        "inflight_bytes",
        "inflight_sizes",
        "inflights",
        "match",
        "max_inflight",
        "max_inflight_bytes",
        "next",
        "probe_sent",
        "recent_active",
        "sent_commit",
        "snap_in_flight",
        "snap_meta",
        "snap_offset",
        "snap_stalled_beats",
        "state",
    )

    def __init__(
        self, next_index: int, max_inflight: int, max_inflight_bytes: int | None = None
    ) -> None:
        """``max_inflight_bytes`` None: the window is bounded by its count only."""
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.inflights: deque[int] = deque()  # last index of each unacknowledged MSG_APPEND
        self.inflight_sizes: deque[int] = deque()  # and its encoded size
        self.inflight_bytes = 0
        self.recent_active = False
        self.sent_commit = 0  # highest commit index carried to it by a MSG_APPEND
        self.snap_meta: SnapshotMetadata | None = None
        self.snap_offset = 0
        self.snap_in_flight = False
        self.snap_stalled_beats = 0

    def is_paused(self) -> bool:
        """Whether the leader must not send it a MSG_APPEND now."""
        if self.state is ProgressState.REPLICATE:
            limit = self.max_inflight_bytes
            return len(self.inflights) >= self.max_inflight or (
                limit is not None and self.inflight_bytes >= limit
            )
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        return True

    def become_probe(self) -> None:
        """Fall back to probing from just after the last known match (or the snapshot sent)."""
        if self.state is ProgressState.SNAPSHOT and self.snap_meta is not None:
            self.next = max(self.match + 1, self.snap_meta.index + 1)
        else:
            self.next = self.match + 1
        self._enter(ProgressState.PROBE)

    def become_replicate(self) -> None:
        """Start streaming right after ``match``."""
        self.next = self.match + 1
        self._enter(ProgressState.REPLICATE)

    def become_snapshot(self, meta: SnapshotMetadata) -> None:
        """Start sending the snapshot ``meta`` from its first byte."""
        self._enter(ProgressState.SNAPSHOT)
        self.snap_meta = meta

    def _enter(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.inflights.clear()
        self.inflight_sizes.clear()
        self.inflight_bytes = 0
        self.snap_meta = None
        self.snap_offset = 0
        self.snap_in_flight = False
        self.snap_stalled_beats = 0

    def sent_entries(self, last: int, size: int = 0) -> None:
        """Record a MSG_APPEND of ``size`` bytes whose entries end at ``last`` (0: it carried no
        entries)."""
        if self.state is ProgressState.REPLICATE:
            if last:
                self.next = last + 1
                self.inflights.append(last)
                self.inflight_sizes.append(size)
                self.inflight_bytes += size
        else:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """Record an acknowledgement up to ``index``; False if it tells nothing new."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        inflights = self.inflights
        while inflights and inflights[0] <= index:
            self.free_first()
        return updated

    def free_first(self) -> None:
        """Forget the oldest unacknowledged MSG_APPEND (acknowledged, or presumed lost)."""
        self.inflights.popleft()
        self.inflight_bytes -= self.inflight_sizes.popleft()

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Handle a rejection of the MSG_APPEND whose previous index was ``rejected``.

        ``match_hint`` is the leader's best guess of where the logs may match. Returns False when
        the rejection is stale (a reply to an older message) and nothing changes.
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True
