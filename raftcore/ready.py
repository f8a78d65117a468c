"""The batch of work the core hands to its runner, and the small values inside it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from raftcore.raftpb_pb2 import ConfState, Entry, HardState, Message, SnapshotMetadata

__all__ = ["ProgressView", "ReadState", "Ready", "Role", "SnapshotChunk", "SoftState", "Status"]


class Role(enum.Enum):
    """A node's role in its current term."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True)
class SoftState:
    """Volatile state worth telling the runner about: need not be persisted."""

    role: Role
    leader_id: int


@dataclass(frozen=True)
class ReadState:
    """A linearizable read point: once the application has applied ``index``, a read tagged
    ``context`` may be served from the local state machine."""

    index: int
    context: bytes


@dataclass(frozen=True)
class SnapshotChunk:
    """``data`` sits at byte ``offset`` of the snapshot described by ``metadata``; ``done`` marks
    the last chunk, after which the snapshot is complete and must be installed."""

    metadata: SnapshotMetadata
    offset: int
    data: bytes
    done: bool


@dataclass
class Ready:
    """Everything the node wants done; obtain with ``RawNode.ready()``, finish with ``advance()``.

    Contract, in this order (``ReadyPersister`` does the first step):

    1. Persist durably: the ``snapshot_chunks`` (committing the snapshot when a chunk is
       ``done``), then ``entries`` (which may start at or below the last stored index: truncate
       there) and ``hard_state`` in one sync. A crash after this point must lose none of it.
       When ``must_sync`` is False the Ready changes nothing durable but the commit index, which
       may be written without a sync: a restart may then find an older commit index, which Raft
       tolerates (the commit index is relearned from the leader), while term, vote and entries
       are never acknowledged before they are synced.
    2. Only then send ``messages``: a vote or an acknowledgement promises that what it speaks
       for is on disk. With lease reads a leader's messages carry its clock reading from when
       the core built them (``lease_sent``, see ``RawNode``'s clock); sending them later only
       shortens the lease, so the send has no deadline.
    3. If a snapshot was installed, restore the application from it; then apply
       ``committed_entries`` in order (an ENTRY_NORMAL with empty data is the leader's no-op and
       changes nothing). Every committed entry handed out is either already stable or in this
       Ready's ``entries``, so step 1 made it durable before it is applied.
    4. Serve each ``ReadState`` once the application has applied its ``index``.
    5. Call ``advance(ready)`` before asking for the next Ready. ``step``/``tick``/``propose``
       may be called in between.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot_chunks: list[SnapshotChunk] = field(default_factory=list)
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    persisted_messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False


@dataclass(frozen=True)
class ProgressView:
    """The leader's view of one follower: highest matched index, next index to send, mode."""

    match: int
    next: int
    state: str


@dataclass(frozen=True)
class Status:
    """A snapshot of a node's state for tests, metrics and the application."""

    id: int
    role: Role
    leader_id: int
    term: int
    vote: int
    commit: int
    applied: int
    last_index: int
    conf_state: ConfState
    progress: dict[int, ProgressView]  # leader only; empty otherwise
    transferee: int  # leadership-transfer target, 0 when none
