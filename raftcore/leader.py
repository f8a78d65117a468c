"""The leader's side of replication, one part of :class:`raftcore.raft.Raft`.

Theory of operation
-------------------
A leader keeps a :class:`~raftcore.progress.Progress` per voter. ``flush`` builds at most one
MSG_APPEND per dirty follower from the entries proposed since (a burst of proposals costs one
message per follower); a follower whose next entry was compacted gets the snapshot instead, in
chunks, resent from the acknowledged offset when a chunk stays unanswered. Responses move each
follower's match and next index; the commit index moves to what a majority matches, the
leader's own match counting only what its storage holds durably (``persisted``, thesis
10.2.1). Heartbeats carry a commit index of min(match, commit), so they never make a follower
commit an entry it might not hold, and confirm ReadIndex rounds (thesis 6.4).

:class:`LeaderSide` is a mixin: the state it works on is declared here and set up by ``Raft``,
which alone is instantiated.
"""

from __future__ import annotations

from collections.abc import Callable

from raftcore import quorum
from raftcore.config import Config, ReadOnlyOption
from raftcore.lease import LeaderLease, lease_duration
from raftcore.log import RaftLog
from raftcore.membership import MembershipLog
from raftcore.progress import Progress, ProgressState
from raftcore.raftpb_pb2 import (
    MSG_APPEND,
    MSG_APPEND_RESPONSE,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESPONSE,
    MSG_SNAPSHOT,
    MSG_SNAPSHOT_RESPONSE,
    MSG_TIMEOUT_NOW,
    Entry,
    Message,
    SnapshotMetadata,
)
from raftcore.read_only import ReadOnly
from raftcore.ready import ReadState, Role
from raftcore.storage import CompactedError

__all__ = ["LeaderSide"]

# A snapshot chunk unacknowledged for this many heartbeats is sent again from the acked offset.
SNAPSHOT_RETRY_BEATS = 2


class LeaderSide:
    """Replication as the leader runs it; mixed into ``Raft``, which owns the state below."""

    id: int
    config: Config
    term: int
    role: Role
    log: RaftLog
    voters: tuple[int, ...]
    learners: tuple[int, ...]
    peers: tuple[int, ...]
    conf: MembershipLog
    prs: dict[int, Progress]
    dirty: set[int]
    msgs: list[Message]
    read_states: list[ReadState]
    read_only: ReadOnly
    reads_awaiting_commit: list[bytes]
    lease: LeaderLease | None
    transferee: int
    election_elapsed: int
    heartbeat_elapsed: int
    batch: Message | None
    batch_add: Callable[[], Entry] | None
    now: Callable[[], float]
    become_follower: Callable[[int, int], None]

    def flush(self) -> None:
        """Build the pending MSG_APPENDs: at most one per dirty follower."""
        batch = self.batch
        if batch is not None:
            self.batch = self.batch_add = None
        if not self.dirty:
            if self.id not in self.voters:  # inlined: flush runs for every Ready
                self._maybe_step_down()
            return
        log = self.log
        committed = log.committed
        built: dict[int, tuple[Message, int, int]] = {}
        size = batch.ByteSize() if batch is not None else 0
        if batch is not None and size <= self.config.max_msg_bytes:
            # Followers whose next index is the batch's first entry all get a copy of it.
            first = batch.entries[0].index
            batch.index = first - 1
            batch.log_term = log.term(first - 1)
            batch.commit = committed
            if self.conf.has_change_in(first, batch.entries[-1].index):
                batch.carries_conf = True
            self._stamp(batch)
            built[first] = (batch, log.last_index(), size)
        for peer in self.dirty:
            pr = self.prs[peer]
            self._send_append(peer, pr, committed > pr.sent_commit, built)
        self.dirty.clear()
        if self.id not in self.voters:
            self._maybe_step_down()

    def _maybe_step_down(self) -> None:
        """A leader that is no voter stops leading once the configuration that says so is
        committed and the appends that carry that commit are built (thesis 4.2.2)."""
        if self.role is Role.LEADER and self.log.committed >= self.conf.latest_index:
            self._step_down_removed()

    def _tick_leader(self) -> None:
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_tick:
            self.election_elapsed = 0
            if self.config.check_quorum:
                # Check-quorum (thesis 6.2): a leader that heard from no majority during an
                # election timeout may be cut off; step down so clients look elsewhere.
                if not quorum.has_quorum(self.voters, self._recently_active):
                    self.become_follower(self.term, 0)
                    return
                for peer, pr in self.prs.items():
                    pr.recent_active = peer == self.id
            self.transferee = 0  # a transfer not done within an election timeout is abandoned
        self.heartbeat_elapsed += 1
        if self.heartbeat_elapsed >= self.config.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._broadcast_heartbeat(self.read_only.last_context())
            self._retry_snapshots()

    def leader_conf_changed(self) -> None:
        """The configuration in force changed while leading: feed the new members, forget the
        removed ones, count the new voter set (thesis 4.1: at once, committed or not)."""
        next_index = self.log.last_index() + 1
        keep = {*self.peers, self.id}
        for member in [m for m in self.prs if m not in keep]:
            del self.prs[member]
            self.dirty.discard(member)
        for member in self.peers:
            if member not in self.prs:
                self.prs[member] = self._new_progress(next_index)
                self.dirty.add(member)
        if self.transferee and self.transferee not in self.voters:
            self.transferee = 0
        if self.lease is not None:
            # Acknowledgements vouch for a majority of the old voters only: start over.
            self.lease = self._new_lease()
        if self._maybe_commit():  # fewer voters may make a quorum already
            self.dirty.update(self.peers)

    def _new_progress(self, next_index: int) -> Progress:
        cfg = self.config
        return Progress(next_index, cfg.max_inflight_msgs, cfg.max_inflight_bytes)

    def _new_lease(self) -> LeaderLease | None:
        cfg = self.config
        if cfg.read_only is not ReadOnlyOption.LEASE_BASED or self.id not in self.voters:
            return None  # a leader that is not a voter (being removed) confirms every read
        duration = lease_duration(cfg.election_tick, cfg.lease_drift_margin)
        return LeaderLease(tuple(v for v in self.voters if v != self.id), duration)

    def _step_down_removed(self) -> None:
        """The change that removed this leader committed: it stops leading (thesis 4.2.2), and
        lets the most caught-up voter campaign at once instead of waiting for a timeout."""
        best = max(self.voters, key=lambda v: self.prs[v].match, default=0)
        if best:
            self._send(MSG_TIMEOUT_NOW, best)
        self.become_follower(self.term, 0)

    def _recently_active(self, peer: int) -> bool:
        pr = self.prs.get(peer)
        return pr is not None and pr.recent_active

    def _append(self, entry: Entry) -> None:
        # The leader's log only grows at its end: skip RaftLog.append's truncation cases.
        self.log.unstable.append(entry)
        if len(self.dirty) < len(self.peers):
            self.dirty.update(self.peers)

    def persisted(self) -> None:
        """The runner made the log durable through ``log.offset - 1`` (``RawNode.advance``).

        Only now does a leader count those entries as its own match (thesis 10.2.1: it may
        send them before its disk write ends, but a quorum is of durable copies): an entry is
        committed only once a majority holds it durably, its leader included if counted."""
        if self.role is not Role.LEADER:
            return
        me = self.prs[self.id]
        stable = self.log.offset - 1
        if stable > me.match:
            me.match = stable
            if self._maybe_commit():
                self.dirty.update(self.peers)

    def _maybe_commit(self) -> bool:
        prs = self.prs
        index = quorum.committed_index(self.voters, lambda v: prs[v].match)
        if not self.log.maybe_commit(index, self.term):
            return False
        if self.reads_awaiting_commit:
            waiting, self.reads_awaiting_commit = self.reads_awaiting_commit, []
            for context in waiting:
                self._start_read(context)
        return True

    def _broadcast_heartbeat(self, context: bytes) -> None:
        committed = self.log.committed
        for peer, pr in self.prs.items():
            if peer != self.id:
                self._send(MSG_HEARTBEAT, peer, commit=min(pr.match, committed), context=context)
                self._stamp(self.msgs[-1])

    def _start_read(self, context: bytes) -> None:
        committed = self.log.committed
        # Without a lease (raftcore.lease) confirm leadership by a heartbeat round.
        alone = self.voters == (self.id,)
        if alone or (self.lease is not None and self.lease.valid(self.now())):
            self.read_states.append(ReadState(committed, context))
            return
        self.read_only.add_request(committed, context, self.id)
        self._broadcast_heartbeat(context)

    def _send_append(
        self,
        to: int,
        pr: Progress,
        send_if_empty: bool,
        built: dict[int, tuple[Message, int, int]] | None = None,
    ) -> None:
        """Send ``to`` the entries from its next index on (or, if they were compacted, the
        snapshot) unless it is paused; an empty MSG_APPEND only if ``send_if_empty``.

        ``built`` caches, by next index, the messages made in one flush: followers at the same
        point get a C-level copy instead of re-encoding every entry (the common fan-out).
        """
        if pr.state is ProgressState.SNAPSHOT or pr.is_paused():
            return
        cached = built.get(pr.next) if built is not None else None
        if cached is not None:
            template, last_sent, size = cached
            if not last_sent and not send_if_empty:
                return
            if template.to:
                m = Message()
                m.CopyFrom(template)
            else:
                m = template  # flush's batch, addressed to no one yet: the first taker owns it
            m.to = to
        else:
            log = self.log
            prev = pr.next - 1
            try:
                prev_term = log.term(prev)
                entries = log.slice(pr.next, log.last_index() + 1, self.config.max_msg_bytes)
            except CompactedError:
                self._send_snapshot(to, pr)
                return
            last_sent = entries[-1].index if entries else 0
            m = Message(
                type=MSG_APPEND,
                to=to,
                sender=self.id,
                term=self.term,
                index=prev,
                log_term=prev_term,
                entries=entries,
                commit=log.committed,
            )
            if entries and self.conf.has_change_in(pr.next, last_sent):
                m.carries_conf = True
            self._stamp(m)
            size = m.ByteSize() if entries else 0  # flow control counts the window in bytes
            if built is not None:
                built[pr.next] = (m, last_sent, size)
            if not entries and not send_if_empty:
                return
        self.msgs.append(m)
        pr.sent_commit = m.commit
        pr.sent_entries(last_sent, size)

    def _send_snapshot(self, to: int, pr: Progress) -> None:
        """Send ``to`` the next chunk of the current snapshot (restarting if it changed)."""
        storage = self.log.storage
        meta = storage.snapshot_metadata()
        sent = pr.snap_meta
        if sent is None or sent.index != meta.index or sent.term != meta.term:
            pr.become_snapshot(meta)
        offset = pr.snap_offset
        data = storage.read_snapshot(offset, self.config.snapshot_chunk_bytes)
        done = offset + len(data) >= storage.snapshot_size()
        self._send(MSG_SNAPSHOT, to, snapshot=meta, offset=offset, data=data, done=done)
        self._stamp(self.msgs[-1])
        pr.snap_in_flight = True
        pr.snap_stalled_beats = 0

    def _retry_snapshots(self) -> None:
        for peer, pr in self.prs.items():
            if pr.state is ProgressState.SNAPSHOT and pr.snap_in_flight:
                pr.snap_stalled_beats += 1
                if pr.snap_stalled_beats >= SNAPSHOT_RETRY_BEATS:
                    self._send_snapshot(peer, pr)

    def _step_leader(self, m: Message) -> None:
        pr = self.prs.get(m.sender)
        if pr is None:
            return
        if self.lease is not None and m.HasField("lease_sent"):
            self.lease.acknowledged(m.sender, m.lease_sent)
        t = m.type
        if t == MSG_APPEND_RESPONSE:
            pr.recent_active = True
            self._handle_append_response(m, pr)
        elif t == MSG_HEARTBEAT_RESPONSE:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state is ProgressState.REPLICATE and pr.is_paused():
                pr.free_first()  # the window may be full of lost messages: let one out
            if pr.match < self.log.last_index():
                self._send_append(m.sender, pr, True)
            if m.context:
                acks = self.read_only.recv_ack(m.sender, m.context)
                if acks is not None and quorum.has_quorum(self.voters, acks.__contains__):
                    self.read_states.extend(self.read_only.release_through(m.context))
        elif t == MSG_SNAPSHOT_RESPONSE:
            pr.recent_active = True
            self._handle_snapshot_response(m, pr)

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        log = self.log
        if m.reject:
            hint = m.reject_hint
            if m.reject_term > 0:
                hint = log.find_conflict_by_term(hint, m.reject_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.sender, pr, True)
            return
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif (
            pr.state is ProgressState.SNAPSHOT
            and pr.snap_meta is not None
            and pr.match >= pr.snap_meta.index
        ):
            pr.become_probe()
        if self._maybe_commit():
            # Tell every follower the new commit index with its next MSG_APPEND.
            self.dirty.update(self.peers)
        elif pr.next <= log.last_index():
            self.dirty.add(m.sender)
        if m.sender == self.transferee and pr.match == log.last_index():
            self._send(MSG_TIMEOUT_NOW, m.sender)

    def _handle_snapshot_response(self, m: Message, pr: Progress) -> None:
        meta = pr.snap_meta
        if pr.state is not ProgressState.SNAPSHOT or meta is None:
            return
        if m.snapshot.index != meta.index or m.snapshot.term != meta.term:
            return  # an answer about a transfer we abandoned
        if m.done and not m.reject:
            pr.maybe_update(meta.index)
            pr.become_probe()
            self.dirty.add(m.sender)
            return
        if m.reject or m.offset > pr.snap_offset:
            pr.snap_offset = m.offset
            self._send_snapshot(m.sender, pr)

    # -- output ---------------------------------------------------------------------------------

    def _send(
        self,
        kind: int,
        to: int,
        *,
        term: int | None = None,
        snapshot: SnapshotMetadata | None = None,
        **fields: int | bytes | bool,
    ) -> None:
        m = Message(
            type=kind,  # type: ignore[arg-type]
            to=to,
            sender=self.id,
            term=self.term if term is None else term,
            **fields,  # type: ignore[arg-type]
        )
        if snapshot is not None:
            m.snapshot.CopyFrom(snapshot)
        self.msgs.append(m)

    def _stamp(self, m: Message) -> None:
        if self.lease is not None:  # the round this message belongs to (raftcore.lease)
            m.lease_sent = self.now()
