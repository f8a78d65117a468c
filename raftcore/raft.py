"""The Raft protocol: one node's state machine, stepped by messages and ticks.

Theory of operation
-------------------
A node is a follower, pre-candidate, candidate or leader; ``step`` first applies the rules every
role shares (terms, section 5.1; votes, 5.2 and 5.4.1; pre-vote and leader stickiness, thesis
9.6) and then hands the message to the role's step function. Nothing here does I/O: outgoing
messages accumulate in ``msgs``, received snapshot bytes in ``snapshot_chunks``, safe read points
in ``read_states``; ``RawNode`` packs them into a ``Ready``.

Replication is eager but batched: a proposal, an acknowledgement or a commit only marks
followers *dirty*; ``flush`` (run when the runner asks for a Ready) builds at most one MSG_APPEND
per dirty follower, carrying every entry proposed since, so a burst of proposals costs one
message per follower and no proposal waits for a heartbeat. Heartbeats carry no entries and a
commit index of min(match, commit), so they never make a follower commit an entry it might not
hold.

Time is ``tick``: the follower's randomized election timeout (drawn from the injected
``random.Random``), the leader's heartbeat interval, the check-quorum period (thesis 6.2) and the
leadership-transfer deadline (thesis 3.10) are all counted in ticks. The lease and the vote
refusal behind it (thesis 6.4.1, :mod:`raftcore.lease`) are measured on the runner's monotonic
clock instead (``now``), because a stalled runner loses ticks but not time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from raftcore import quorum
from raftcore.config import Config
from raftcore.errors import NotLeaderError, ProposalDroppedError
from raftcore.leader import LeaderSide
from raftcore.lease import LeaderLease, echo_round
from raftcore.log import RaftLog
from raftcore.membership import (
    ConfChangeError,
    Membership,
    MembershipLog,
    make_change,
)
from raftcore.progress import Progress, ProgressState
from raftcore.raftpb_pb2 import (
    CONF_PROMOTE,
    ENTRY_CONF_CHANGE,
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
    ConfState,
    Entry,
    Message,
    SnapshotMetadata,
)
from raftcore.read_only import ReadOnly
from raftcore.ready import ReadState, Role, SnapshotChunk
from raftcore.storage import Storage

__all__ = ["CAMPAIGN_TRANSFER", "Raft"]

# Context of a MSG_VOTE sent because the leader asked us to take over: voters skip the lease
# (stickiness) check for it, since the leader itself is stepping aside.
CAMPAIGN_TRANSFER = b"transfer"

_LEADER_MESSAGES = frozenset((MSG_APPEND, MSG_HEARTBEAT, MSG_SNAPSHOT))


class _Incoming:
    """A snapshot being received from the leader: its metadata and the next byte expected."""

    __slots__ = ("expected", "meta")

    def __init__(self, meta: SnapshotMetadata) -> None:
        self.meta = meta
        self.expected = 0


class Raft(LeaderSide):
    """One node's protocol state. Driven by ``RawNode``; not thread-safe, does no I/O."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        rng: random.Random,
        applied: int,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Restart from ``storage``'s hard state and configuration (section 5.1: term, vote and
        log survive crashes). The configuration is the last conf entry's in the log, else the
        snapshot's, else ``Config.voters`` (a new cluster); none at all is a node that joins and
        waits for the leader to send it the log. ``clock``: see ``RawNode``; None counts ticks
        instead. Raises ValueError on an inconsistent configuration or storage."""
        hard_state, _ = storage.initial_state()
        self.id = config.id
        self.config = config
        self.rng = rng
        self.voters: tuple[int, ...] = ()
        self.learners: tuple[int, ...] = ()
        self.peers: tuple[int, ...] = ()  # every member but this node: whom a leader feeds
        self.log = RaftLog(storage, hard_state.commit, applied)
        self.conf = MembershipLog.from_storage(storage, config.voters)
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.lead = 0
        self.role = Role.FOLLOWER
        self.msgs: list[Message] = []
        self.snapshot_chunks: list[SnapshotChunk] = []
        self.read_states: list[ReadState] = []
        self.prs: dict[int, Progress] = {}
        self.dirty: set[int] = set()
        self.votes: dict[int, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = config.election_tick
        self.transferee = 0
        self.read_only = ReadOnly()
        self.reads_awaiting_commit: list[bytes] = []
        self.incoming: _Incoming | None = None
        self.clock = clock
        self.ticks = 0  # the clock when the runner gives none
        self.heard_at = -math.inf  # when this node last heard from its leader, on ``now()``
        self.lease: LeaderLease | None = None  # the leader's, when reads may use it
        # The leader's proposals since the last flush, as the body of a MSG_APPEND.
        self.batch: Message | None = None
        self.batch_add: Callable[[], Entry] | None = None  # self.batch.entries.add
        self._apply_membership()
        self.become_follower(self.term, 0)
        # A restarted voter may have answered a leader's round just before it went down: it
        # keeps refusing votes for an election timeout from its restart (raftcore.lease).
        self.restarted_at = self.now() if self.term > 0 else -math.inf

    # -- inputs ---------------------------------------------------------------------------------

    def now(self) -> float:
        """The clock the lease runs on, in ticks: the runner's, or the ticks counted so far."""
        return self.clock() if self.clock is not None else float(self.ticks)

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self.ticks += 1
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_timeout and self._may_campaign():
            if self._in_lease():
                return  # our own vote is refused too: try again on the next tick
            self.election_elapsed = 0
            self.campaign()

    def _in_lease(self) -> bool:
        """Whether this node still refuses votes: it heard from a leader (or restarted) less than
        an election timeout ago on its own clock (a leader's lease may count on it). Not whether
        it still follows that leader: any higher-term message forgets the leader, none may end
        the refusal early."""
        if not self.config.check_quorum:
            return False
        return self.now() - max(self.heard_at, self.restarted_at) < self.config.election_tick

    def campaign(self, transfer: bool = False) -> None:
        """Start an election (section 5.2): a pre-vote round first when enabled, unless the
        leader asked us to take over (``transfer``), which skips pre-vote and stickiness. A node
        that still refuses votes (``_in_lease``) does not start one of its own either."""
        if self.role is Role.LEADER or not self._may_campaign():
            return
        if not transfer and self._in_lease():
            return
        if self.config.pre_vote and not transfer:
            self._become_pre_candidate()
            self._request_votes(MSG_PRE_VOTE, self.term + 1, b"")
        else:
            self._run_election(CAMPAIGN_TRANSFER if transfer else b"")

    def _may_campaign(self) -> bool:
        """A voter of the configuration in force may campaign; so may a node that the last,
        uncommitted change removed (thesis 4.2.2: it may be needed to elect the leader that
        commits that change), though its own vote does not count (``_request_votes``)."""
        if self.id in self.voters:
            return True
        conf = self.conf
        return (
            conf.latest_index > self.log.committed
            and self.id in conf.at(conf.latest_index - 1).voters
        )

    def _run_election(self, context: bytes) -> None:
        self._become_candidate()
        self._request_votes(MSG_VOTE, self.term, context)

    def propose(self, data: bytes) -> int:
        """Append a command to the leader's log; returns its index. Raises NotLeaderError off
        the leader and ProposalDroppedError while a leadership transfer is under way."""
        # Inlined _append: this is the hottest path in the core. An open batch means this node
        # leads with peers to feed (every role change closes it), so only the transfer is
        # checked per proposal. The leader's own match moves only when its log is durable
        # (persisted).
        log = self.log
        index = log.offset + len(log.unstable)
        add = self.batch_add
        if add is None or self.transferee:
            add = self._open_batch()
            if add is None:  # a single voter: it commits when its own append is durable
                log.unstable.append(Entry(term=self.term, index=index, data=data))
                return index
        # Setting fields one by one is about twice as fast as add()'s keyword arguments.
        entry = add()
        entry.term = self.term
        entry.index = index
        entry.data = data
        log.unstable.append(entry)
        return index

    def _open_batch(self) -> Callable[[], Entry] | None:
        """Check that a proposal is allowed and start the next MSG_APPEND's body: new entries
        are born inside it, so sending them costs a C-level message copy per follower rather
        than re-encoding every entry (see flush). None when there is no follower to feed."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.lead)
        if self.transferee:
            raise ProposalDroppedError(f"leadership is moving to {self.transferee}")
        if not self.peers:
            return None
        self.batch = Message(type=MSG_APPEND, sender=self.id, term=self.term)
        add = self.batch_add = self.batch.entries.add  # the field lookup alone costs ~1 us
        # Only flush and role changes empty ``dirty``, and both close the batch.
        self.dirty.update(self.peers)
        return add

    def propose_conf_change(
        self, kind: int, node_id: int = 0, address: str = ""
    ) -> tuple[int, int]:
        """Append a single-server membership change (``raftcore.membership``); it takes effect
        here at once, on each follower when it appends it (thesis 4.1). Returns the entry's
        index and the node it concerns (for CONF_ADD_LEARNER, the id it assigns).

        Raises NotLeaderError off the leader; ProposalDroppedError while a transfer is under
        way or until this leader committed an entry of its own term (until then an earlier
        leader's change may still commit: the single-server bug of raft-dev, 2015);
        ConfChangeError while another change is uncommitted (thesis 4.1: one at a time), for a
        learner that has not caught up (within ``Config.promote_lag`` entries) and for a change
        that makes no sense in the configuration in force."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.lead)
        if self.transferee:
            raise ProposalDroppedError(f"leadership is moving to {self.transferee}")
        log = self.log
        if log.term(log.committed) != self.term:
            raise ProposalDroppedError("the new leader has not committed an entry of its term yet")
        if self.conf.latest_index > log.committed:
            raise ConfChangeError(
                "another membership change is still pending (not committed yet)", retryable=True
            )
        if kind == CONF_PROMOTE and node_id in self.learners:
            pr = self.prs[node_id]
            behind = log.last_index() - pr.match
            if behind > self.config.promote_lag or pr.match == 0:  # 0: it never answered
                raise ConfChangeError(
                    f"{{node}} has not caught up: it holds the log through {pr.match}, "
                    f"{behind} entries behind the leader",
                    node_id,
                    retryable=True,
                )
        change = make_change(self.conf.latest, kind, node_id, address)
        index = self.propose(change.SerializeToString())
        entry = log.unstable[-1]  # the entry propose made (in the open batch, if any)
        entry.type = ENTRY_CONF_CHANGE
        self.conf.append((entry,))
        self._apply_membership()
        return index, change.node_id

    def step(self, m: Message) -> None:
        """Handle a message from a peer. Messages from older terms are dropped (some answered so
        their sender learns the newer term); a newer term makes this node a follower first."""
        if m.term > self.term:
            if m.type == MSG_VOTE or m.type == MSG_PRE_VOTE:
                # Leader stickiness (thesis 6.2/9.6): while we hear from a live leader, a
                # disruptive candidate gets no answer and does not bump our term.
                in_lease = self.role is Role.LEADER or self._in_lease()
                if in_lease and self.config.check_quorum and m.context != CAMPAIGN_TRANSFER:
                    return
            if m.type == MSG_PRE_VOTE or (m.type == MSG_PRE_VOTE_RESPONSE and not m.reject):
                pass  # a pre-vote never changes terms; a granted one was asked at term + 1
            elif m.type in _LEADER_MESSAGES:
                self.become_follower(m.term, m.sender)
            else:
                self.become_follower(m.term, 0)
        elif m.term < self.term:
            if m.type == MSG_APPEND or m.type == MSG_HEARTBEAT:
                # A deposed leader (perhaps cut off until now) learns our term from this answer and
                # steps down; without it, with pre-vote or check-quorum on, it might never learn.
                self._send(MSG_APPEND_RESPONSE, m.sender)
            elif m.type == MSG_PRE_VOTE:
                self._send(MSG_PRE_VOTE_RESPONSE, m.sender, reject=True)
            return

        if m.type == MSG_VOTE or m.type == MSG_PRE_VOTE:
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def transfer_leadership(self, target: int) -> None:
        """Hand leadership to ``target`` (thesis 3.10). Raises NotLeaderError off the leader and
        ValueError if ``target`` is not another voter."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.lead)
        if target == self.id or target not in self.voters:
            raise ValueError(f"cannot transfer leadership to {target}: not another voter")
        if self.transferee == target:
            return
        self.transferee = target
        if self.lease is not None:
            self.lease.end()  # the target's campaign skips the followers' refusal
        self.election_elapsed = 0  # the transfer is abandoned after one election timeout
        pr = self.prs[target]
        if pr.match == self.log.last_index():
            self._send(MSG_TIMEOUT_NOW, target)
        else:
            self.dirty.add(target)

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read point tagged ``context`` (see ``RawNode.read_index``)."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.lead)
        if not context:
            raise ValueError("read_index needs a non-empty context")
        if context in self.read_only or context in self.reads_awaiting_commit:
            raise ValueError(f"read context {context!r} is already pending")
        if self.log.term(self.log.committed) != self.term:
            # Until an entry of its own term commits, a new leader does not know the true commit
            # index (thesis 6.4): hold the read until its no-op commits.
            self.reads_awaiting_commit.append(context)
            return
        self._start_read(context)

    def report_unreachable(self, peer: int) -> None:
        """The runner could not deliver to ``peer``: stop streaming to it and probe instead."""
        pr = self.prs.get(peer) if self.role is Role.LEADER else None
        if pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    # -- role changes ---------------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = 0
        self.lead = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self.rng.randrange(
            self.config.election_tick, 2 * self.config.election_tick
        )
        self.transferee = 0
        self.votes = {}
        self.prs = {}
        self.dirty.clear()
        self.read_only = ReadOnly()
        self.reads_awaiting_commit = []
        self.incoming = None
        self.batch = self.batch_add = None
        self.lease = None

    def become_follower(self, term: int, lead: int) -> None:
        """Become a follower in ``term`` under leader ``lead`` (0 if unknown)."""
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        # Neither term nor vote changes: a pre-vote that fails leaves no trace (thesis 9.6).
        self._reset(self.term)
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        next_index = self.log.last_index() + 1
        for member in (*self.peers, self.id):
            self.prs[member] = self._new_progress(next_index)
        me = self.prs[self.id]
        me.match = self.log.offset - 1  # only what storage holds durably counts (persisted)
        me.recent_active = True
        me.become_replicate()
        self.lease = self._new_lease()
        # The no-op lets the leader commit, and so learn the commit index, in its own term
        # (section 5.4.2; thesis 6.4 for reads).
        self._append(Entry(term=self.term, index=next_index))

    # -- elections ------------------------------------------------------------------------------

    def _request_votes(self, kind: int, term: int, context: bytes) -> None:
        if self.id in self.voters:  # a node being removed asks, but its vote does not count
            self.votes[self.id] = True
        if self._tally() is not quorum.VoteResult.PENDING:
            return
        last_index = self.log.last_index()
        last_term = self.log.term(last_index)
        for v in self.voters:
            if v != self.id:
                self._send(
                    kind, v, term=term, index=last_index, log_term=last_term, context=context
                )

    def _tally(self) -> quorum.VoteResult:
        """Count votes and act on the outcome."""
        result = quorum.vote_result(self.voters, self.votes)
        if result is quorum.VoteResult.WON:
            if self.role is Role.PRE_CANDIDATE:
                self._run_election(b"")  # the pre-vote round is won: run the real one
            else:
                self._become_leader()
        elif result is quorum.VoteResult.LOST:
            self.become_follower(self.term, 0)
        return result

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MSG_PRE_VOTE
        can_vote = self.vote == m.sender or (
            # A higher term that reached us by another message does not end the refusal.
            (m.context == CAMPAIGN_TRANSFER or not self._in_lease())
            and ((self.vote == 0 and self.lead == 0) or (pre and m.term > self.term))
        )
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # A granted pre-vote answers at the term it was asked for, so the asker can tell it
            # from a stale answer.
            self._send(MSG_PRE_VOTE_RESPONSE if pre else MSG_VOTE_RESPONSE, m.sender, term=m.term)
            if not pre:
                self.election_elapsed = 0
                self.vote = m.sender
        else:
            kind = MSG_PRE_VOTE_RESPONSE if pre else MSG_VOTE_RESPONSE
            self._send(kind, m.sender, reject=True)

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in _LEADER_MESSAGES:
            # A leader exists in our term (5.2): yield to it.
            self.become_follower(m.term, m.sender)
            self._step_follower(m)
        elif m.sender in self.voters and (
            (t == MSG_PRE_VOTE_RESPONSE and self.role is Role.PRE_CANDIDATE)
            or (t == MSG_VOTE_RESPONSE and self.role is Role.CANDIDATE)
        ):
            self.votes.setdefault(m.sender, not m.reject)
            self._tally()

    # -- follower -------------------------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MSG_TIMEOUT_NOW:
            self.campaign(transfer=True)
            return
        if t not in _LEADER_MESSAGES:
            return
        self.election_elapsed = 0
        self.lead = m.sender
        self.heard_at = self.now()
        first = len(self.msgs)
        if t == MSG_APPEND:
            self._handle_append(m)
        elif t == MSG_HEARTBEAT:
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self._send(MSG_HEARTBEAT_RESPONSE, m.sender, context=m.context)
        else:
            self._handle_snapshot(m)
        echo_round(m, self.msgs, first)

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            # Everything up to our commit index matches the leader's log already.
            self._send(MSG_APPEND_RESPONSE, m.sender, index=log.committed)
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            conf = self.conf
            cut = conf.latest_index > m.index and conf.truncate(log.match_term, m.index)
            if (m.carries_conf and conf.append(m.entries)) or cut:
                self._apply_membership()
            self._send(MSG_APPEND_RESPONSE, m.sender, index=last_new)
            return
        # Consistency check failed (5.3). Point the leader at the last entry that can match: the
        # largest index <= its prev index whose term is <= its prev term, so that the leader can
        # skip a whole conflicting term per round trip instead of one entry.
        hint = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
        self._send(
            MSG_APPEND_RESPONSE,
            m.sender,
            index=m.index,
            reject=True,
            reject_hint=hint,
            reject_term=log.term(hint),
        )

    def _handle_snapshot(self, m: Message) -> None:
        meta = m.snapshot
        inc = self.incoming
        if inc is None or inc.meta.index != meta.index or inc.meta.term != meta.term:
            if meta.index <= self.log.committed or self.log.match_term(meta.index, meta.term):
                # We already hold everything the snapshot covers (perhaps this is a retry after
                # our final acknowledgement was lost): resume plain replication.
                self.log.commit_to(meta.index)
                self._send(MSG_APPEND_RESPONSE, m.sender, index=self.log.committed)
                return
            if m.offset != 0:
                self._send(MSG_SNAPSHOT_RESPONSE, m.sender, snapshot=meta, reject=True, offset=0)
                return
            inc = self.incoming = _Incoming(SnapshotMetadata(index=meta.index, term=meta.term))
            inc.meta.conf_state.CopyFrom(meta.conf_state)
        if m.offset != inc.expected:
            # A duplicate (offset below) is acknowledged again; a gap (above) asks for a resend.
            reject = m.offset > inc.expected
            self._send(
                MSG_SNAPSHOT_RESPONSE, m.sender, snapshot=meta, reject=reject, offset=inc.expected
            )
            return
        if m.done and meta.index <= self.log.committed:
            # Overtaken while streaming (replication caught us up): drop this transfer.
            self.incoming = None
            self._send(MSG_APPEND_RESPONSE, m.sender, index=self.log.committed)
            return
        self.snapshot_chunks.append(SnapshotChunk(inc.meta, m.offset, m.data, m.done))
        inc.expected += len(m.data)
        if m.done:
            self.incoming = None
            self.log.restore(inc.meta)
            cs = inc.meta.conf_state
            self.conf.reset(Membership.of(cs) if cs.voters else self.conf.latest, inc.meta.index)
            self.conf.append(self.log.unstable)  # the suffix the snapshot left in place
            self._apply_membership()
        self._send(
            MSG_SNAPSHOT_RESPONSE,
            m.sender,
            snapshot=meta,
            offset=inc.expected,
            done=m.done,
            index=meta.index if m.done else 0,
        )

    def _apply_membership(self) -> None:
        """Put the configuration in force (the latest in the log) to work on this node."""
        latest = self.conf.latest
        self.voters = latest.voters
        self.learners = latest.learners
        self.peers = tuple(i for i in latest.members if i != self.id)
        if self.role is Role.LEADER:
            self.leader_conf_changed()

    def conf_state(self) -> ConfState:
        """The configuration in force, as a ConfState."""
        return self.conf.latest.conf_state()
