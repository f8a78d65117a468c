"""The runner-facing handle on a Raft node: inputs in, ``Ready`` batches out.

Theory of operation
-------------------
``RawNode`` owns a :class:`raftcore.raft.Raft` and adds the hand-off protocol: ``ready()``
collects everything produced since the last hand-off (state to persist, messages, committed
entries, read states) and ``advance()`` records that the runner did it. The node remembers the
last hard and soft state it handed out, so a Ready carries them only when they changed, and it
moves its "handed out" cursors at ``ready()`` time, so nothing is handed out twice even if the
runner steps the node between ``ready()`` and ``advance()``.

Time comes in two forms. ``tick()`` is logical time: elections, heartbeats, check-quorum and
transfer deadlines count ticks, and a runner that misses ticks (a stalled loop) only delays them.
The leader lease and the followers' vote refusal behind it (:mod:`raftcore.lease`) must not lose
time that way, so they read ``clock``, a monotonic clock the runner supplies, in ticks (seconds
since any fixed origin divided by the tick length). The core calls it only while it is being
driven (inside ``tick``, ``step``, ``read_index``, ``ready`` and the like), to stamp what it
sends, to note when it heard from its leader and to check a lease, so every reading is as fresh
as the event it belongs to; it never stores a reading for later checks. The clock must not go
backwards and should be the clock the runner's tick timer runs on; it is data in the sense that
the core does no I/O with it, and a deterministic clock (the simulation's) keeps runs
replayable. Without one the core counts the ticks it was given, which is only right for a runner
that never misses a tick (the unit tests).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raftcore.config import Config
from raftcore.errors import RaftError
from raftcore.membership import Membership
from raftcore.raft import Raft
from raftcore.raftpb_pb2 import (
    MSG_APPEND,
    MSG_APPEND_RESPONSE,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESPONSE,
    MSG_PRE_VOTE,
    MSG_PRE_VOTE_RESPONSE,
    MSG_SNAPSHOT,
    MSG_SNAPSHOT_RESPONSE,
    MSG_TIMEOUT_NOW,
    MSG_VOTE,
    MSG_VOTE_RESPONSE,
    HardState,
    Message,
)
from raftcore.ready import ProgressView, Ready, Role, SoftState, Status
from raftcore.storage import Storage

__all__ = ["RawNode"]

_REMOTE_TYPES = frozenset(
    (
        MSG_APPEND,
        MSG_APPEND_RESPONSE,
        MSG_HEARTBEAT,
        MSG_HEARTBEAT_RESPONSE,
        MSG_VOTE,
        MSG_VOTE_RESPONSE,
        MSG_PRE_VOTE,
        MSG_PRE_VOTE_RESPONSE,
        MSG_SNAPSHOT,
        MSG_SNAPSHOT_RESPONSE,
        MSG_TIMEOUT_NOW,
    )
)


class RawNode:
    """A Raft node without I/O. Single-threaded: call its methods from one place."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        rng: random.Random,
        applied: int = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Restart from ``storage.initial_state()``. ``applied`` is the index the application
        already holds (e.g. restored from the snapshot); committed entries are handed out from
        just after max(``applied``, snapshot index). ``rng`` draws the election timeouts.
        ``clock`` is the runner's monotonic clock in ticks (module docstring); None counts
        ticks. Raises ValueError if the configuration or storage is inconsistent."""
        self._open(config, storage, rng, applied, clock)

    def _open(
        self,
        config: Config,
        storage: Storage,
        rng: random.Random,
        applied: int,
        clock: Callable[[], float] | None,
    ) -> None:
        self._raft = raft = Raft(config, storage, rng, applied, clock)
        self._prev_soft = SoftState(raft.role, raft.lead)
        self._prev_hard = (raft.term, raft.vote, raft.log.committed)
        self._durable_term = raft.term  # the term of the last hard state storage holds
        self._awaiting_advance = False

    def restart(self, applied: int) -> None:
        """Forget everything storage does not hold, as a crash and restart would, in place.

        For a runner that must give up the Ready it could not persist (``ReadyPersister``: a
        received snapshot was lost): that Ready needs no ``advance``, and it and everything
        stepped in since are dropped, which is safe only because none of it was sent. The node
        comes back a follower that knows no leader, with the configuration, clock and random
        source it had; ``applied`` is what the application holds, as for the constructor."""
        raft = self._raft
        self._open(raft.config, raft.log.storage, raft.rng, applied, raft.clock)

    # -- inputs ---------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick (elections, heartbeats, check-quorum, timeouts)."""
        self._raft.tick()

    def step(self, msg: Message) -> None:
        """Handle a message from a peer. Any term is accepted (stale ones are ignored or
        answered); ValueError if ``msg`` is not a peer-to-peer type or not addressed here."""
        if msg.type not in _REMOTE_TYPES:
            raise ValueError(f"message type {msg.type} is not a peer-to-peer message")
        if msg.to != self._raft.id or msg.sender == 0:
            raise ValueError(f"message from {msg.sender} to {msg.to} is misrouted")
        self._raft.step(msg)

    def campaign(self) -> None:
        """Start an election now (with a pre-vote round first if enabled). No-op on a leader,
        a non-voter, and (with check-quorum) a node that heard from a leader or restarted less
        than an election timeout ago: its vote backs that leader's lease (``raftcore.lease``).
        To move leadership at once use ``transfer_leadership`` on the leader."""
        self._raft.campaign()

    def propose(self, data: bytes) -> int:
        """Append ``data`` as a new entry; returns the index it gets. The entry is sent to
        followers with the next Ready, batched with any other proposals made before it.

        Raises NotLeaderError(leader_hint) if this node is not the leader and
        ProposalDroppedError while a leadership transfer is under way. The index is only a
        promise if the entry commits: a later leader may overwrite it, so callers must check
        the committed entry (or its term) before acknowledging.
        """
        return self._raft.propose(data)

    def propose_conf_change(
        self, kind: int, node_id: int = 0, address: str = ""
    ) -> tuple[int, int]:
        """Propose one single-server membership change (``raftcore.membership``):
        CONF_ADD_LEARNER at ``address`` (the core picks the id), CONF_PROMOTE or CONF_REMOVE of
        ``node_id``. Returns (index, node id). The change is in force on this leader at once
        and on every node as soon as it appends the entry (thesis 4.1); it is done once the
        entry commits, which the runner sees as a committed ENTRY_CONF_CHANGE.

        Raises NotLeaderError off the leader; ProposalDroppedError (retry shortly) during a
        leadership transfer or before this leader committed an entry of its term;
        ConfChangeError when refused: another change pending, a learner not caught up (both
        ``retryable``), an address already a member, an unknown node, promoting a voter,
        removing the last voter. Removing the leader itself is allowed: it keeps leading
        until the change commits (without counting itself), then steps down and tells the most
        caught-up voter to campaign (thesis 4.2.2)."""
        return self._raft.propose_conf_change(kind, node_id, address)

    @property
    def membership(self) -> Membership:
        """The configuration in force on this node (the last one its log holds)."""
        return self._raft.conf.latest

    @property
    def membership_index(self) -> int:
        """Index of the conf entry behind :attr:`membership` (the snapshot's index, or 0 at
        the cluster's birth, when the log holds none)."""
        return self._raft.conf.latest_index

    def membership_at(self, index: int) -> Membership:
        """The configuration once the log through ``index`` is applied (what a snapshot taken
        at ``index`` must carry)."""
        return self._raft.conf.at(index)

    def transfer_leadership(self, target: int) -> None:
        """Hand leadership to voter ``target`` (thesis 3.10): stop accepting proposals, bring
        ``target`` up to date, then tell it to campaign at once. Abandoned if not done within
        an election timeout. NotLeaderError off the leader; ValueError for a bad target."""
        self._raft.transfer_leadership(target)

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point tagged with a unique non-empty ``context``.

        A later Ready carries ``ReadState(index, context)``: once the application has applied
        ``index``, reading its state is linearizable. With ``ReadOnlyOption.SAFE`` the leader
        waits until it has committed an entry in its term, records the commit index, and
        confirms it still leads by a heartbeat round carrying ``context`` (thesis 6.4). With
        ``LEASE_BASED`` it answers at once while its lease holds (otherwise it does the
        heartbeat round): a majority acknowledged a round it sent at ``s`` on its clock, and
        ``now < s + election_tick * (1 - lease_drift_margin)``. Those followers refuse every
        other candidate until ``election_tick`` after they heard that round, on their clocks
        (:mod:`raftcore.lease`). Safe under any message delay and any pause of either side's
        loop, provided the nodes' clocks run at rates within ``lease_drift_margin`` of each
        other and the runner passes a real monotonic ``clock`` (counted ticks stall with the
        loop). The lease is off from the start of a leadership transfer to the end of the
        term; a voter restarted with a non-zero term refuses votes for an election timeout
        from its restart, since it may have answered a round just before it went down.

        Raises NotLeaderError off the leader and ValueError for an empty or already pending
        context. A request pending when the node loses leadership is dropped: retry elsewhere.
        """
        self._raft.read_index(context)

    def report_unreachable(self, peer: int) -> None:
        """The runner failed to deliver a message to ``peer``: fall back to probing it."""
        self._raft.report_unreachable(peer)

    # -- the hand-off ---------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether ``ready()`` would return anything worth handling."""
        raft = self._raft
        raft.flush()
        log = raft.log
        return bool(
            raft.msgs
            or log.unstable
            or log.committed > log.applying
            or raft.snapshot_chunks
            or raft.read_states
            or (raft.term, raft.vote, log.committed) != self._prev_hard
            or raft.role is not self._prev_soft.role
            or raft.lead != self._prev_soft.leader_id
        )

    def ready(self) -> Ready:
        """Everything to do now; see :class:`raftcore.Ready` for the persist-before-send
        contract. Call ``advance`` with it before the next ``ready()`` (RaftError otherwise)."""
        if self._awaiting_advance:
            raise RaftError("advance() the previous Ready before asking for another")
        raft = self._raft
        raft.flush()
        log = raft.log
        rd = Ready()
        if raft.role is not self._prev_soft.role or raft.lead != self._prev_soft.leader_id:
            rd.soft_state = self._prev_soft = SoftState(raft.role, raft.lead)
        hard = (raft.term, raft.vote, log.committed)
        if hard != self._prev_hard:
            # Term and vote must be on disk before any message speaks for them; a commit-only
            # change need not be (etcd's MustSync makes the same distinction).
            rd.must_sync = hard[:2] != self._prev_hard[:2]
            self._prev_hard = hard
            rd.hard_state = HardState(term=hard[0], vote=hard[1], commit=hard[2])
        if log.unstable:
            rd.entries = list(log.unstable)
            rd.must_sync = True
        if raft.snapshot_chunks:
            rd.snapshot_chunks, raft.snapshot_chunks = raft.snapshot_chunks, []
        rd.committed_entries = log.next_committed()
        if raft.msgs:
            # A leader that already led when the previous Ready was taken (so that Ready, which
            # made its term and vote durable, was advanced) promises nothing about its own disk
            # in what it sends: its messages may leave before this Ready is durable (thesis
            # 10.2.1). Everything else (votes, acknowledgements) speaks for this Ready's state.
            if (
                raft.role is Role.LEADER
                and rd.soft_state is None
                and raft.term == self._durable_term
            ):
                rd.messages, raft.msgs = raft.msgs, []
            else:
                rd.persisted_messages, raft.msgs = raft.msgs, []
        if raft.read_states:
            rd.read_states, raft.read_states = raft.read_states, []
        self._awaiting_advance = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The runner did ``rd`` as its contract says: above all, everything it asked to
        persist is durable now. A leader counts those entries towards its commit quorum from
        here on (so the next Ready may commit them)."""
        raft = self._raft
        log = raft.log
        if rd.hard_state is not None:
            self._durable_term = rd.hard_state.term
        if rd.snapshot_chunks and rd.snapshot_chunks[-1].done:
            log.stable_snapshot(rd.snapshot_chunks[-1].metadata)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
            raft.persisted()
        if rd.committed_entries:
            log.applied = max(log.applied, rd.committed_entries[-1].index)
        self._awaiting_advance = False

    # -- introspection --------------------------------------------------------------------------

    def status(self) -> Status:
        """A consistent snapshot of this node's state."""
        raft = self._raft
        log = raft.log
        return Status(
            id=raft.id,
            role=raft.role,
            leader_id=raft.lead,
            term=raft.term,
            vote=raft.vote,
            commit=log.committed,
            applied=log.applied,
            last_index=log.last_index(),
            conf_state=raft.conf_state(),
            progress={
                peer: ProgressView(pr.match, pr.next, pr.state.value)
                for peer, pr in raft.prs.items()
            },
            transferee=raft.transferee,
        )

    @property
    def id(self) -> int:
        """This node's id."""
        return self._raft.id

    @property
    def term(self) -> int:
        """The current term."""
        return self._raft.term

    @property
    def role(self) -> Role:
        """The current role."""
        return self._raft.role

    @property
    def leader_id(self) -> int:
        """The leader of the current term as far as this node knows (0 if none)."""
        return self._raft.lead

    @property
    def commit_index(self) -> int:
        """The highest index known committed."""
        return self._raft.log.committed

    @property
    def applied_index(self) -> int:
        """The highest index the runner reported applied (via ``advance``)."""
        return self._raft.log.applied
