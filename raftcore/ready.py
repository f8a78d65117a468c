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

    The contract is asynchronous persistence (thesis 10.2.1; etcd's raft doc.go; raft-rs's
    ``messages`` / ``persisted_messages``). ``ReadyPersister`` does the writing:

    1. Write the ``snapshot_chunks`` (committing the snapshot when a chunk is ``done``: that
       commit is durable by itself), then ``entries`` (which may start at or below the last
       stored index: truncate there) and ``hard_state``, in one save. Make it durable with one
       sync when ``must_sync``; otherwise only the commit index changed, which may stay unsynced
       (a restart relearns it from the leader).
    2. ``messages`` may be sent at once, before the sync: they are a leader's (appends,
       heartbeats, snapshots) and the core puts them here only when that node already led when
       the previous Ready was taken, so its term and vote are durable and its messages promise
       nothing about its own disk. ``persisted_messages`` (votes, acknowledgements, anything
       else) are sent only once step 1 is durable. With lease reads a leader's messages carry
       its clock reading from when the core built them (``lease_sent``), so a late send only
       shortens the lease.
    3. ``committed_entries`` may be applied at once, even while step 1's sync runs: the core
       commits an entry only once a majority holds it durably (the leader counts its own copy
       only after ``advance`` reported it durable), so it is fixed whatever this node's disk
       loses (state machine safety, section 5.4.3). An ENTRY_NORMAL with empty data is the
       leader's no-op. Exception: if this Ready installs a snapshot, restore the application
       from it after step 1, and apply these entries after that.
    4. Serve each ``ReadState`` once the application has applied its ``index``.
    5. Once step 1 is durable (and the rest done), call ``advance(ready)``: that is how the core
       learns what is durable. Take no other Ready before it; ``step``/``tick``/``propose`` may
       be called in between, and what they produce waits for the next Ready.
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
