"""Raft as a pure, deterministic state machine: no I/O, no global randomness; the
monotonic clock the lease needs is a reading the runner supplies.

The public surface and the runner loop are described in docs/raftcore.md. Modules: ``config``
(knobs), ``ready`` (the hand-off values), ``log`` (log view over storage + unstable tail),
``progress`` (per-follower replication state), ``quorum`` (majority math over a voter set),
``read_only`` (ReadIndex queue), ``lease`` (leader lease and vote refusal), ``membership``
(configurations and their changes), ``raft`` (the protocol), ``rawnode`` (Ready/advance),
``persister`` (ReadyPersister).
"""

from raftcore.config import Config, ReadOnlyOption
from raftcore.errors import NotLeaderError, ProposalDroppedError, RaftError
from raftcore.membership import ConfChangeError, Membership
from raftcore.persister import ReadyPersister
from raftcore.rawnode import RawNode
from raftcore.ready import ProgressView, ReadState, Ready, Role, SnapshotChunk, SoftState, Status

__all__ = [
    "ConfChangeError",
    "Config",
    "Membership",
    "NotLeaderError",
    "ProgressView",
    "ProposalDroppedError",
    "RaftError",
    "RawNode",
    "ReadOnlyOption",
    "ReadState",
    "Ready",
    "ReadyPersister",
    "Role",
    "SnapshotChunk",
    "SoftState",
    "Status",
]
