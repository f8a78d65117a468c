"""The knobs of one Raft node, validated once at construction."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Config", "ReadOnlyOption"]


class ReadOnlyOption(enum.Enum):
    """How the leader makes a linearizable read point (thesis section 6.4).

    SAFE confirms leadership with one heartbeat round per read batch. LEASE_BASED trusts the
    check-quorum lease instead and answers at once; it assumes clocks on all nodes advance at
    roughly the same rate (bounded drift), see :meth:`raftcore.RawNode.read_index`.
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
    Raises ValueError when a value is out of range.
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
        if self.snapshot_chunk_bytes <= 0:
            raise ValueError("snapshot_chunk_bytes must be positive")
        if self.read_only is ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ValueError("LEASE_BASED reads need check_quorum: the lease is check-quorum's")
