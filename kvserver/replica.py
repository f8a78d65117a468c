"""One KV replica: a Raft core, its storage and the KV state machine, glued without I/O.

Theory of operation
-------------------
The replica turns client requests into Raft work and Raft output back into answers. It never
waits and never touches a socket or a clock: the runner (the asyncio node, or the simulated
cluster) calls it from one thread and carries out the I/O around it.

Writes: the leader proposes the encoded :class:`Command`, remembering the index and term the entry
got. When an entry at that index is applied, the waiter gets the state machine's result if the
term matches, or ``ErrWrongLeader`` if another leader's entry took the index (the client then
retries elsewhere with the same RequestId, and the session table keeps that exactly-once). A
replica that stops being leader fails its pending writes at once for the same reason.

Reads never enter the log (Raft thesis 6.4): reads that arrive while a ReadIndex round is in
flight wait for the next round, so one heartbeat round confirms leadership for a whole batch. A
batch is served once the state machine has applied its read index. Stale reads, served at once
from local state on any replica, exist only when the caller asks for them.

The Raft core is private to the replica: the runner ticks it, steps peers' messages into it and
reads the leader hint through the replica, never directly. A Ready goes through in two halves,
split at the sync (the asynchronous persistence of ``raftcore.Ready``): ``begin_ready`` writes
it, sends the messages the core lets leave at once, applies the committed entries and answers
what they settle; once storage is synced, ``finish_ready`` sends the votes and acknowledgements
and advances the core. Which messages may leave early and which entries may be applied is the
core's decision; the replica and its runners hold no durability rule.

Storage failures: if persisting a Ready fails (disk full, I/O error), the error propagates to the
runner, nothing of that Ready is sent or applied, and the very same Ready is persisted again on the
next call (the core hands out each Ready once). Meanwhile writes are refused with
``ErrStorageUnavailable`` rather than queued behind a disk that may stay full. Two failures need
more than a retry of the same call:

- The snapshot being received is lost (``SnapshotAbortedError``: its commit failed, or a chunk
  could not be cut back): that Ready can never be persisted. The replica gives it up, restarts
  the core from storage in place (``RawNode.restart``; none of the Ready was sent, and the core
  answers the leader's next chunk so that the transfer starts again from offset 0), fails the
  pending requests, and counts as failed until a later Ready installs a snapshot or saves
  entries (so a node stalls once, not once per attempt at the transfer).
- Restoring the state machine from a snapshot that was installed fails (a read error): the
  Ready is durable and its messages are out, but nothing after the snapshot may be applied
  first. Its apply and ``advance`` are retried before any new work, the way a failed Ready is.

Membership changes (``raftcore.membership``) are proposed through :meth:`propose_conf_change`;
their entries are applied to no state machine, and their waiter learns the index once the
change is applied here (committed). :attr:`removed` tells the runner this node's own removal
is applied, so it stops serving.

Snapshots: every replica compacts its own log. When the bytes of its log since the last snapshot
pass ``max_raft_state``, it writes the state machine through ``storage.snapshot_writer`` at its
applied index; the core then serves followers that fell behind from that snapshot. A snapshot
received from the leader replaces the state machine before any later entry is applied.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Result
from kvserver.state_machine import KVStateMachine
from raftcore import (
    Membership,
    NotLeaderError,
    ProposalDroppedError,
    RawNode,
    Ready,
    ReadyPersister,
    Role,
    Status,
)
from raftcore.raftpb_pb2 import ENTRY_CONF_CHANGE, Entry, Message, SnapshotMetadata
from raftcore.storage import SnapshotAbortedError, Storage

__all__ = [
    "MAX_COMMAND_BYTES",
    "Replica",
    "Waiter",
    "restore_machine",
]

MAX_COMMAND_BYTES = 8 << 20
"""Largest encoded command accepted. An entry over ``max_msg_bytes`` still travels alone in one
MSG_APPEND, which must fit the 16 MiB RPC frame with room to spare."""

Send = Callable[[list[Message]], None]
"""How the runner hands a Ready's messages to the transport."""

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

_SNAPSHOT_READ_CHUNK = 1 << 20


class Waiter(Protocol[T_contra]):
    """Receives the outcome of one request, exactly once: a value, or an error string."""

    def resolve(self, value: T_contra) -> None:
        """The request succeeded with ``value``."""
        ...

    def reject(self, err: str) -> None:
        """The request did not (or may not) take effect here; ``err`` says why."""
        ...


class _Read(Generic[T]):
    __slots__ = ("query", "waiter")

    def __init__(self, query: Callable[[KVStateMachine], T], waiter: Waiter[T]) -> None:
        self.query = query
        self.waiter = waiter

    def serve(self, machine: KVStateMachine) -> None:
        self.waiter.resolve(self.query(machine))


class Replica:
    """Serves one node's share of the KV service on top of its Raft core."""

    def __init__(
        self,
        core: RawNode,
        storage: Storage,
        machine: KVStateMachine,
        *,
        max_raft_state: int | None = None,
    ) -> None:
        """Own ``core``, a Raft core opened over ``storage``; nothing else may drive it.
        ``machine`` must already hold the state as of ``core.applied_index`` (restored from
        the storage's snapshot, if any). ``max_raft_state`` None never snapshots."""
        self._raw = core
        self.storage = storage
        self.machine = machine
        self.max_raft_state = max_raft_state
        self._persister = ReadyPersister(storage)
        self._unpersisted: Ready | None = None  # taken, but its persist failed: retried
        # Written (and its early part done), waiting for finish_ready once it is durable.
        self._in_flight: tuple[Ready, SnapshotMetadata | None] | None = None
        # Durable and sent, but not applied and advanced: restoring its snapshot failed.
        self._unapplied: tuple[Ready, SnapshotMetadata | None] | None = None
        self._snapshot_lost = False  # a Ready was given up (module docstring)
        self._applied = core.applied_index
        self._pending_writes: dict[int, tuple[int, Waiter[Result]]] = {}
        self._pending_conf: dict[int, tuple[int, Waiter[int]]] = {}
        self._queued_reads: list[_Read[Any]] = []
        self._reads_in_flight: dict[bytes, list[_Read[Any]]] = {}
        self._confirmed_reads: deque[tuple[int, list[_Read[Any]]]] = deque()
        self._read_seq = 0
        # (index, bytes) of every stored log entry above the snapshot, to know the log's size.
        self._log_sizes: deque[tuple[int, int]] = deque()
        self._log_bytes = 0
        self._track_stored_log()

    @property
    def applied_index(self) -> int:
        """Index of the last entry applied to the state machine."""
        return self._applied

    @property
    def storage_failed(self) -> bool:
        """True while a Ready could not be persisted or applied (it is retried on the next
        handle_ready), and after a lost snapshot until storage took the next one or entries."""
        return self._unpersisted is not None or self._unapplied is not None or self._snapshot_lost

    @property
    def log_bytes(self) -> int:
        """Serialized size of the log entries kept since the last snapshot."""
        return self._log_bytes

    # -- the core, for the runner ---------------------------------------------------------------

    def tick(self) -> None:
        """One tick of the core's logical clock passed."""
        self._raw.tick()

    def step(self, messages: Iterable[Message]) -> None:
        """Hand the core a batch of messages from peers (ValueError for a misrouted one)."""
        step = self._raw.step
        for m in messages:
            step(m)

    def report_unreachable(self, peer: int) -> None:
        """A message to ``peer`` could not be delivered: the core probes it instead."""
        self._raw.report_unreachable(peer)

    def campaign(self) -> None:
        """Ask the core to start an election now (``RawNode.campaign``)."""
        self._raw.campaign()

    def transfer_leadership(self, target: int) -> None:
        """Ask the leader's core to hand leadership to ``target`` (thesis 3.10)."""
        self._raw.transfer_leadership(target)

    @property
    def leader_hint(self) -> int:
        """The Raft id of the leader as far as this replica knows (0: unknown)."""
        return self._raw.leader_id

    @property
    def role(self) -> Role:
        """This replica's role in the current term."""
        return self._raw.role

    @property
    def term(self) -> int:
        """The current term."""
        return self._raw.term

    @property
    def commit_index(self) -> int:
        """The highest log index this replica knows committed."""
        return self._raw.commit_index

    def status(self) -> Status:
        """The core's state, for operators and tests."""
        return self._raw.status()

    @property
    def membership(self) -> Membership:
        """The configuration in force here: the last one the log holds, committed or not."""
        return self._raw.membership

    @property
    def applied_membership(self) -> Membership:
        """The configuration as of the applied index (committed)."""
        return self._raw.membership_at(self._applied)

    @property
    def membership_index(self) -> int:
        """Index of the conf entry that made :attr:`membership` (0: the cluster's birth)."""
        return self._raw.membership_index

    @property
    def removed(self) -> bool:
        """Whether this node's own removal from the cluster is applied here (so committed):
        it takes no part any more, and ids are never reused, so it never will again."""
        return self.applied_membership.was_removed(self._raw.id)

    # -- requests ------------------------------------------------------------------------------

    def propose(self, command: Command, waiter: Waiter[Result]) -> None:
        """Replicate ``command``; ``waiter`` gets its result once applied, or ErrWrongLeader
        (ErrStorageUnavailable while this replica cannot persist, ErrBadRequest for a command
        over MAX_COMMAND_BYTES)."""
        if self.storage_failed:
            waiter.reject(Err.STORAGE_UNAVAILABLE)
            return
        data = command.SerializeToString()
        if len(data) > MAX_COMMAND_BYTES:
            waiter.reject(Err.BAD_REQUEST)
            return
        try:
            index = self._raw.propose(data)
        except (NotLeaderError, ProposalDroppedError):
            waiter.reject(Err.WRONG_LEADER)
            return
        self._pending_writes[index] = (self._raw.term, waiter)

    def propose_conf_change(
        self, kind: int, node_id: int, address: str, waiter: Waiter[int]
    ) -> int:
        """Propose one membership change (``RawNode.propose_conf_change``); returns the node it
        concerns (the new id for CONF_ADD_LEARNER). ``waiter`` gets the entry's index once it
        is applied here, or ErrWrongLeader if another leader's entry took its place.
        Refusals raise at once, as the core raises them (NotLeaderError,
        ProposalDroppedError, ConfChangeError); ErrStorageUnavailable goes to the waiter."""
        if self.storage_failed:
            waiter.reject(Err.STORAGE_UNAVAILABLE)
            return node_id
        index, node_id = self._raw.propose_conf_change(kind, node_id, address)
        self._pending_conf[index] = (self._raw.term, waiter)
        return node_id

    def read(
        self, query: Callable[[KVStateMachine], T], waiter: Waiter[T], *, stale: bool = False
    ) -> None:
        """Run ``query`` against the state machine at a linearizable point and hand its value to
        ``waiter`` (ErrWrongLeader on a replica that is not leader). With ``stale`` the query runs
        at once on local state, which may lag the leader: only for callers that asked for it."""
        if stale:
            waiter.resolve(query(self.machine))
            return
        if self._raw.role is not Role.LEADER:
            waiter.reject(Err.WRONG_LEADER)
            return
        self._queued_reads.append(_Read(query, waiter))
        if not self._reads_in_flight:
            self._start_read_round()

    def _start_read_round(self) -> None:
        batch, self._queued_reads = self._queued_reads, []
        self._read_seq += 1
        context = self._read_seq.to_bytes(8, "big")
        try:
            self._raw.read_index(context)
        except NotLeaderError:
            for r in batch:
                r.waiter.reject(Err.WRONG_LEADER)
            return
        self._reads_in_flight[context] = batch

    # -- driving -------------------------------------------------------------------------------

    def handle_ready(self, send: Send) -> bool:
        """Do one Ready's work synchronously: :meth:`begin_ready` with a sync, then
        :meth:`finish_ready`. False if there was nothing to do; storage errors propagate as in
        those two."""
        if self.begin_ready(send) is None:
            return False
        self.finish_ready(send)
        return True

    def begin_ready(self, send: Send, *, sync: bool = True) -> Ready | None:
        """Take the next Ready and do everything of it that need not wait for its sync.

        Writes its snapshot chunks, entries and hard state (synced only with ``sync``), then
        ``send``s the messages the core lets leave at once, applies the committed entries and
        answers what they settle (the core hands out only entries a majority holds durably:
        ``raftcore.Ready``). Returns that Ready, now in flight, or None if there was nothing
        to do. The runner then makes storage durable (``storage.sync()`` if ``sync`` was False
        and the Ready ``must_sync``) and calls :meth:`finish_ready`; it may step the core
        meanwhile, but takes no other Ready.

        Raises whatever storage raises, having sent and applied nothing of the Ready: the next
        call persists the same Ready again (gives it up instead on a SnapshotAbortedError, and
        first retries a failed restore: see the module docstring)."""
        assert self._in_flight is None, "finish_ready() the Ready in flight first"
        rd = self._unpersisted
        if rd is None:
            if self._unapplied is not None:
                self._finish_applying()
            self._maybe_snapshot()  # one that failed is retried before any new work
            if not self._raw.has_ready():
                return None
            rd = self._unpersisted = self._raw.ready()
        try:
            installed = self._persister.persist(rd, sync=sync)
        except SnapshotAbortedError:
            self._give_up()
            raise
        self._unpersisted = None
        if installed is not None or rd.entries:
            self._snapshot_lost = False
        self._in_flight = (rd, installed)
        if rd.messages:
            send(rd.messages)
        if installed is None:
            self._apply_ready(rd)  # else after the restore from it, in finish_ready
        return rd

    def finish_ready(self, send: Send) -> None:
        """The Ready in flight is durable now: ``send`` the messages that waited for that,
        restore the snapshot it installed (then apply its entries), advance the core. Raises
        StorageError if that restore fails: the next :meth:`begin_ready` retries the restore
        and the advance before anything else (nothing is sent twice)."""
        assert self._in_flight is not None, "begin_ready() first"
        rd, installed = self._in_flight
        self._in_flight = None
        self._track_appended(rd.entries)
        if rd.persisted_messages:
            send(rd.persisted_messages)
        self._unapplied = (rd, installed)
        self._finish_applying()
        # After advance: a failed snapshot leaves nothing of the Ready undone (the next
        # begin_ready takes it again), so the runner only stalls and retries.
        self._maybe_snapshot()

    def _give_up(self) -> None:
        """Drop the Ready the persister cannot finish: restart the core from storage."""
        self._unpersisted = None
        self._snapshot_lost = True
        self._fail_all(Err.WRONG_LEADER)
        self._raw.restart(self._applied)
        meta = self.storage.snapshot_metadata()
        if meta.index > self._applied:
            # The Ready installed a snapshot before it lost the next one, and the restarted
            # core counts it applied: restore it first (an empty Ready advances nothing).
            self._unapplied = (Ready(), meta)

    def _finish_applying(self) -> None:
        """Restore from the snapshot ``_unapplied`` installed, if any, and apply the Ready's
        entries after it; advance. A failed restore raises before anything is applied and
        leaves it all to the next :meth:`begin_ready`."""
        assert self._unapplied is not None
        rd, installed = self._unapplied
        if installed is not None:
            self._restore(installed)
            self._apply_ready(rd)
        self._unapplied = None
        self._raw.advance(rd)

    def _apply_ready(self, rd: Ready) -> None:
        # Entries first: one this replica proposed may commit in the Ready that also says it
        # stopped leading (a removed leader steps down as its removal commits), and a committed
        # entry of the proposal's term is that proposal's outcome.
        for entry in rd.committed_entries:
            self._apply(entry)
        if rd.soft_state is not None and rd.soft_state.role is not Role.LEADER:
            self._fail_all(Err.WRONG_LEADER)
        self._serve_reads(rd)

    def _serve_reads(self, rd: Ready) -> None:
        for rs in rd.read_states:
            batch = self._reads_in_flight.pop(rs.context, None)
            if batch:
                self._confirmed_reads.append((rs.index, batch))
        while self._confirmed_reads and self._confirmed_reads[0][0] <= self._applied:
            for r in self._confirmed_reads.popleft()[1]:
                r.serve(self.machine)
        if self._queued_reads and not self._reads_in_flight:
            self._start_read_round()

    def _apply(self, entry: Entry) -> None:
        if entry.index <= self._applied:
            return
        self._applied = entry.index
        if entry.type == ENTRY_CONF_CHANGE:
            self._applied_conf(entry)
            return
        result = self.machine.apply(entry.data)
        pending = self._pending_writes.pop(entry.index, None)
        if pending is None:
            return
        term, waiter = pending
        if term == entry.term and result is not None:
            waiter.resolve(result)
        else:
            waiter.reject(Err.WRONG_LEADER)

    def _applied_conf(self, entry: Entry) -> None:
        pending = self._pending_conf.pop(entry.index, None)
        if pending is not None:
            term, waiter = pending
            if term == entry.term:
                waiter.resolve(entry.index)
            else:
                waiter.reject(Err.WRONG_LEADER)

    def _fail_all(self, err: str) -> None:
        writes, self._pending_writes = self._pending_writes, {}
        for _, waiter in writes.values():
            waiter.reject(err)
        changes, self._pending_conf = self._pending_conf, {}
        for _, conf_waiter in changes.values():
            conf_waiter.reject(err)
        reads = [r for batch in self._reads_in_flight.values() for r in batch]
        reads += [r for _, batch in self._confirmed_reads for r in batch]
        reads += self._queued_reads
        self._reads_in_flight.clear()
        self._confirmed_reads.clear()
        self._queued_reads = []
        for r in reads:
            r.waiter.reject(err)

    # -- snapshots -----------------------------------------------------------------------------

    def _restore(self, meta: SnapshotMetadata) -> None:
        restore_machine(self.storage, self.machine)
        self._applied = max(self._applied, meta.index)
        # The install may have kept or discarded the log after the snapshot: ask storage.
        self._track_stored_log()
        # Entries this replica proposed below the snapshot can no longer be matched to a result.
        for index in [i for i in self._pending_writes if i <= meta.index]:
            self._pending_writes.pop(index)[1].reject(Err.WRONG_LEADER)
        for index in [i for i in self._pending_conf if i <= meta.index]:
            self._pending_conf.pop(index)[1].reject(Err.WRONG_LEADER)

    def _maybe_snapshot(self) -> None:
        if self.max_raft_state is not None and self._log_bytes > self.max_raft_state:
            self._take_snapshot()

    def _take_snapshot(self) -> None:
        # Snapshots are taken between Readies, so one covers only entries this node has synced:
        # the durability argument of docs/raftcore.md counts on it.
        assert self._in_flight is None, "no snapshot while a Ready is in flight"
        index = self._applied
        if index <= self.storage.snapshot_metadata().index:
            return
        meta = SnapshotMetadata(
            index=index,
            term=self.storage.term(index),
            conf_state=self._raw.membership_at(index).conf_state(),
        )
        writer = self.storage.snapshot_writer(meta)
        try:
            for chunk in self.machine.snapshot_chunks():
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        self._drop_tracked_through(index)

    def _track_stored_log(self) -> None:
        self._log_sizes.clear()
        self._log_bytes = 0
        first, last = self.storage.first_index(), self.storage.last_index()
        if first <= last:
            self._track_appended(self.storage.entries(first, last + 1))

    def _track_appended(self, entries: list[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        while self._log_sizes and self._log_sizes[-1][0] >= first:
            self._log_bytes -= self._log_sizes.pop()[1]
        for e in entries:
            size = e.ByteSize()
            self._log_sizes.append((e.index, size))
            self._log_bytes += size

    def _drop_tracked_through(self, index: int) -> None:
        while self._log_sizes and self._log_sizes[0][0] <= index:
            self._log_bytes -= self._log_sizes.popleft()[1]


def restore_machine(storage: Storage, machine: KVStateMachine) -> None:
    """Load ``machine`` from the snapshot in ``storage`` (nothing to do when there is none)."""
    size = storage.snapshot_size()
    if size == 0:
        return
    loader = machine.snapshot_loader()
    for offset in range(0, size, _SNAPSHOT_READ_CHUNK):
        loader.feed(storage.read_snapshot(offset, _SNAPSHOT_READ_CHUNK))
    machine.restore(loader)
