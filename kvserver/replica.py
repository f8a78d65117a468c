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

Snapshots: every replica compacts its own log. When the bytes of its log since the last snapshot
pass ``max_raft_state``, it writes the state machine through ``storage.snapshot_writer`` at its
applied index; the core then serves followers that fell behind from that snapshot. A snapshot
received from the leader replaces the state machine before any later entry is applied.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Result
from kvserver.state_machine import KVStateMachine
from raftcore import NotLeaderError, ProposalDroppedError, RawNode, Ready, ReadyPersister, Role
from raftcore.raftpb_pb2 import Entry, Message, SnapshotMetadata
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
        node: RawNode,
        storage: Storage,
        machine: KVStateMachine,
        *,
        max_raft_state: int | None = None,
    ) -> None:
        """Wrap a core and storage that were opened together; ``machine`` must already hold the
        state as of ``node.applied_index`` (restored from the storage's snapshot, if any).
        ``max_raft_state`` None never snapshots."""
        self.node = node
        self.storage = storage
        self.machine = machine
        self.max_raft_state = max_raft_state
        self._persister = ReadyPersister(storage)
        self._unpersisted: Ready | None = None
        # Durable and sent, but not applied and advanced: restoring its snapshot failed.
        self._unapplied: tuple[Ready, SnapshotMetadata | None] | None = None
        self._snapshot_lost = False  # a Ready was given up (module docstring)
        self._durable_term = storage.initial_state()[0].term
        self._applied = node.applied_index
        self._pending_writes: dict[int, tuple[int, Waiter[Result]]] = {}
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
            index = self.node.propose(data)
        except (NotLeaderError, ProposalDroppedError):
            waiter.reject(Err.WRONG_LEADER)
            return
        self._pending_writes[index] = (self.node.term, waiter)

    def read(
        self, query: Callable[[KVStateMachine], T], waiter: Waiter[T], *, stale: bool = False
    ) -> None:
        """Run ``query`` against the state machine at a linearizable point and hand its value to
        ``waiter`` (ErrWrongLeader on a replica that is not leader). With ``stale`` the query runs
        at once on local state, which may lag the leader: only for callers that asked for it."""
        if stale:
            waiter.resolve(query(self.machine))
            return
        if self.node.role is not Role.LEADER:
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
            self.node.read_index(context)
        except NotLeaderError:
            for r in batch:
                r.waiter.reject(Err.WRONG_LEADER)
            return
        self._reads_in_flight[context] = batch

    # -- driving -------------------------------------------------------------------------------

    def handle_ready(self, send: Callable[[list[Message]], None]) -> bool:
        """Do one Ready's work synchronously: persist, ``send`` its messages, apply, advance.

        Returns False if there was nothing to do. Raises whatever storage raises; the Ready is
        then kept, neither sent nor advanced, and persisted again by the next call (given up
        instead on a SnapshotAbortedError, and only applied again after a failed restore: see
        the module docstring)."""
        written = self.write_ready()
        if written is None:
            return False
        self.finish_ready(*written, send)
        return True

    def write_ready(self, *, sync: bool = True) -> tuple[Ready, SnapshotMetadata | None] | None:
        """The first half of :meth:`handle_ready`: take the next Ready and persist it.

        Returns the Ready and the snapshot it installed, or None if there was nothing to do.
        With ``sync`` False its entries and hard state are written but not synced: the caller
        must then ``storage.sync()`` (if ``ready.must_sync``) before :meth:`finish_ready`, and
        may step the core meanwhile (a node runs the sync on another thread). Storage errors
        propagate as in :meth:`handle_ready`."""
        rd = self._unpersisted
        if rd is None:
            if self._unapplied is not None:
                self._finish_applying()
            self._maybe_snapshot()  # one that failed is retried before any new work
            if not self.node.has_ready():
                return None
            rd = self._unpersisted = self.node.ready()
        try:
            installed = self._persister.persist(rd, sync=sync)
        except SnapshotAbortedError:
            self._give_up()
            raise
        self._unpersisted = None
        if installed is not None or rd.entries:
            self._snapshot_lost = False
        return rd, installed

    def _give_up(self) -> None:
        """Drop the Ready the persister cannot finish: restart the core from storage."""
        self._unpersisted = None
        self._snapshot_lost = True
        self._fail_all(Err.WRONG_LEADER)
        self.node.restart(self._applied)
        meta = self.storage.snapshot_metadata()
        if meta.index > self._applied:
            # The Ready installed a snapshot before it lost the next one, and the restarted
            # core counts it applied: restore it first (an empty Ready advances nothing).
            self._unapplied = (Ready(), meta)

    def may_send_before_sync(self, rd: Ready) -> bool:
        """Whether ``rd`` (written, not finished) may send its messages before its sync returns.

        True for a leader that already led (in this term, so its term and vote are durable) when
        the Ready was taken: thesis 10.2.1 lets a leader write its log in parallel with
        replicating it. A leader's messages promise nothing about its own disk, and what they
        lead to (followers' acknowledgements, hence a new commit index) leaves this node only in
        a later Ready, after this one is durable."""
        return (
            self.node.role is Role.LEADER
            and rd.soft_state is None
            and (rd.hard_state is None or rd.hard_state.term == self._durable_term)
        )

    def finish_ready(
        self,
        rd: Ready,
        installed: SnapshotMetadata | None,
        send: Callable[[list[Message]], None] | None,
    ) -> None:
        """The second half of :meth:`handle_ready`, once ``rd`` is durable: ``send`` its
        messages (None: they were sent already, see :meth:`may_send_before_sync`), apply it,
        answer, advance the core. Raises StorageError if restoring the snapshot ``rd``
        installed fails: ``rd`` is then applied and advanced by the next :meth:`write_ready`
        (its messages are not sent twice)."""
        if rd.hard_state is not None:
            self._durable_term = rd.hard_state.term
        self._track_appended(rd.entries)
        if send is not None:
            send(rd.messages)
        self._unapplied = (rd, installed)
        self._finish_applying()
        # After advance: a failed snapshot leaves nothing of the Ready undone (the next
        # write_ready takes it again), so the runner only stalls and retries.
        self._maybe_snapshot()

    def _finish_applying(self) -> None:
        """Apply and advance ``_unapplied``. A failed restore from its snapshot raises before
        anything is applied, and leaves it to the next :meth:`write_ready` to do again."""
        assert self._unapplied is not None
        rd, installed = self._unapplied
        self.apply_ready(rd, installed)
        self._unapplied = None
        self.node.advance(rd)

    def apply_ready(self, rd: Ready, installed: SnapshotMetadata | None) -> None:
        """The application half of a Ready, after it was persisted and its messages sent.
        Raises StorageError, having applied nothing, if restoring ``installed`` fails; calling
        it again with the same arguments is then safe."""
        if rd.soft_state is not None and rd.soft_state.role is not Role.LEADER:
            self._fail_all(Err.WRONG_LEADER)
        if installed is not None:
            self._restore(installed)
        for entry in rd.committed_entries:
            self._apply(entry)
        self._serve_reads(rd)

    def apply_durable(self, rd: Ready) -> None:
        """While ``rd``'s own sync runs, apply what of it is durable already: its committed
        entries below its own ``entries`` (earlier Readies synced them), then serve the reads
        that makes possible. Writes are answered a sync earlier this way. Nothing is done for a
        Ready that changes the role or carries a snapshot: :meth:`finish_ready` applies the
        rest, in order, once ``rd`` is durable."""
        if rd.soft_state is not None or rd.snapshot_chunks:
            return
        durable_below = rd.entries[0].index if rd.entries else None
        for entry in rd.committed_entries:
            if durable_below is not None and entry.index >= durable_below:
                break
            self._apply(entry)
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
        result = self.machine.apply(entry.data)
        pending = self._pending_writes.pop(entry.index, None)
        if pending is None:
            return
        term, waiter = pending
        if term == entry.term and result is not None:
            waiter.resolve(result)
        else:
            waiter.reject(Err.WRONG_LEADER)

    def _fail_all(self, err: str) -> None:
        writes, self._pending_writes = self._pending_writes, {}
        for _, waiter in writes.values():
            waiter.reject(err)
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

    def _maybe_snapshot(self) -> None:
        if self.max_raft_state is not None and self._log_bytes > self.max_raft_state:
            self._take_snapshot()

    def _take_snapshot(self) -> None:
        index = self._applied
        if index <= self.storage.snapshot_metadata().index:
            return
        meta = SnapshotMetadata(
            index=index, term=self.storage.term(index), conf_state=self.node.status().conf_state
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
