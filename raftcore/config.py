"""The knobs of one Raft node, validated once at construction."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Config", "ReadOnlyOption"]


class ReadOnlyOption(enum.Enum):
    """How the leader makes a linearizable read point (thesis section 6.4).

    SAFE confirms leadership with one heartbeat round per read batch. LEASE_BASED trusts the
    leader lease instead (:mod:`raftcore.lease`) and answers at once while it holds; it assumes
    the nodes' monotonic clocks run at rates within ``Config.lease_drift_margin`` of each other,
    see :meth:`raftcore.RawNode.read_index`.
    """

    SAFE = "safe"
    LEASE_BASED = "lease_based"


@dataclass(frozen=True)
class Config:
    """Configuration of one node.

    ``id`` is positive (0 means "none" everywhere). ``voters`` is the initial voter set, used only
    when the storage's ConfState has none. A follower's election timeout is drawn at random from
    ``[election_tick, 2 * election_tick)`` ticks; the leader heartbeats every ``heartbeat_tick``
    ticks. ``max_msg_bytes`` bounds the entry bytes of one MSG_APPEND (a single larger entry is
    still sent alone); ``max_inflight_msgs`` bounds the unacknowledged MSG_APPENDs per follower
    in replicate mode, ``max_inflight_bytes`` their encoded bytes (flow control: what a follower
    that stops answering holds back; None: no byte bound); ``snapshot_chunk_bytes`` is the size
    of one MSG_SNAPSHOT chunk.
    With ``LEASE_BASED`` reads a lease lasts ``election_tick * (1 - lease_drift_margin)`` on the
    leader's clock from the send time of the round a majority acknowledged: safe while any two
    nodes' monotonic clocks differ in rate by at most ``lease_drift_margin`` (a fraction in
    [0, 1); 0.1 = 10 %). A learner is promoted to voter only once its log is within
    ``promote_lag`` entries of the leader's (thesis 4.2.1: a voter that is far behind cannot
    help commit, and may cost the cluster its quorum). Raises ValueError when a value is out of
    range.
    """

    id: int
    voters: tuple[int, ...]
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_msg_bytes: int = 1 << 20
    max_inflight_msgs: int = 256
    max_inflight_bytes: int | None = 8 << 20
    snapshot_chunk_bytes: int = 1 << 20
    read_only: ReadOnlyOption = ReadOnlyOption.SAFE
    lease_drift_margin: float = 0.1
    promote_lag: int = 1000

    def __post_init__(self) -> None:
        if self.id <= 0:
            raise ValueError(f"id must be positive, got {self.id}")
        if any(v <= 0 for v in self.voters):
            raise ValueError(f"voter ids must be positive, got {self.voters}")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be positive")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_msg_bytes <= 0 or self.max_inflight_msgs <= 0:
            raise ValueError("max_msg_bytes and max_inflight_msgs must be positive")
        if self.max_inflight_bytes is not None and self.max_inflight_bytes <= 0:
            raise ValueError("max_inflight_bytes must be positive (or None)")
        if self.promote_lag < 0:
            raise ValueError("promote_lag must be >= 0")
        if self.snapshot_chunk_bytes <= 0:
            raise ValueError("snapshot_chunk_bytes must be positive")
        if not 0.0 <= self.lease_drift_margin < 1.0:
            raise ValueError(f"lease_drift_margin must be in [0, 1), not {self.lease_drift_margin}")
        if self.read_only is ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ValueError("LEASE_BASED reads need check_quorum: the lease is check-quorum's")
