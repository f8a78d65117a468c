"""One simulated KV server: a Raft core, its MemoryStorage and a :class:`~kvserver.replica.Replica`.

Theory of operation
-------------------
A :class:`KVNode` is driven by the same three kinds of events as
:class:`raftcore.testing.cluster.SimNode`: its tick timer (every ``tick_ms`` of virtual time, at a
random phase), Raft messages delivered by the :class:`~raftcore.testing.network.SimNetwork`, and
client requests, which arrive as ``Port.call`` requests (:mod:`kvserver.testing.wire`) and become
``Replica.propose`` / ``Replica.read`` calls. After each event the node drains its Readys through
``Replica.handle_ready`` (persist, send, apply, serve reads, maybe snapshot, advance). Requests
only *schedule* that drain at the current instant, so requests arriving together leave in one
Ready, as a real runner batches them.

The leader stamps each write with the virtual clock (``now_ms``) before proposing it; applied in
log order, that stamp drives session expiry identically on every node.

The Raft-level :class:`~raftcore.testing.invariants.InvariantChecker` watches every step: the
Replica persists each Ready itself, so the node hands the core to it as an
:class:`_ObservedRawNode` that remembers the Ready it gave out, and reports it to the checker from
the send callback (which the Replica calls right after persisting) and after the Ready is applied.

Crash and restart follow 6.5840: only the MemoryStorage survives (as a copy); a new node restores
the state machine from the storage's snapshot (:func:`kvserver.replica.restore_machine`) and the
core replays the log after it.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from kvserver.kvcommand_pb2 import Result
from kvserver.replica import Replica, restore_machine
from kvserver.state_machine import ERR_NO_KEY, OK, KVStateMachine
from kvserver.testing.wire import GetRequest, WireError, decode_request, encode_reply
from raftcore import RawNode, Ready, Role
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Message, SnapshotMetadata
from raftcore.testing.cluster import REQUEST_TYPES
from raftcore.testing.network import Port
from raftcore.testing.scheduler import MS, Timer

if TYPE_CHECKING:
    from collections.abc import Callable

    from kvserver.testing.cluster import KVCluster

__all__ = ["ERR_BAD_REQUEST", "KVNode"]

ERR_BAD_REQUEST = "ErrBadRequest"
"""The error a server answers to request bytes it cannot parse."""


class _ObservedRawNode(RawNode):
    """A RawNode that remembers the last Ready it handed out (for the invariant checker)."""

    last_ready: Ready | None = None

    def ready(self) -> Ready:
        rd = super().ready()
        self.last_ready = rd
        return rd


class _Responder:
    """Turns the Replica's answer into the reply bytes of one client call."""

    __slots__ = ("_node", "_respond")

    def __init__(self, node: KVNode, respond: Callable[[bytes], None]) -> None:
        self._node = node
        self._respond = respond

    def resolve(self, value: Result | bytes | None) -> None:
        if isinstance(value, Result):
            result = value
        elif value is None:
            result = Result(err=ERR_NO_KEY)
        else:
            result = Result(err=OK, value=value)
        self._respond(encode_reply(self._node.raw.leader_id, result))

    def reject(self, err: str) -> None:
        self._respond(encode_reply(self._node.raw.leader_id, Result(err=err)))


def _installed(rd: Ready) -> SnapshotMetadata | None:
    # ReadyPersister installs the snapshot whose last chunk is in this Ready.
    for chunk in reversed(rd.snapshot_chunks):
        if chunk.done:
            return chunk.metadata
    return None


class KVNode:
    """One incarnation of one KV server; dead after :meth:`KVCluster.crash`."""

    def __init__(
        self, cluster: KVCluster, node_id: int, storage: MemoryStorage, rng: random.Random
    ) -> None:
        self.id = node_id
        self.cluster = cluster
        self.storage = storage
        self.alive = True
        self.snapshots_installed = 0
        """Snapshots this incarnation received from a leader (InstallSnapshot)."""
        options = cluster.options
        machine = KVStateMachine(
            random.Random(rng.getrandbits(64)), session_max_idle_ms=options.session_max_idle_ms
        )
        restore_machine(storage, machine)
        meta = storage.snapshot_metadata()
        hard_state, _ = storage.initial_state()
        cluster.checker.on_start(
            node_id,
            meta,
            hard_state,
            storage.entries(storage.first_index(), storage.last_index() + 1),
        )
        self.raw = _ObservedRawNode(cluster.config_for(node_id), storage, rng, applied=meta.index)
        self.replica = Replica(self.raw, storage, machine, max_raft_state=options.max_raft_state)
        self._applied = meta.index
        self._snapshot_index = meta.index
        self.port: Port = cluster.network.attach(
            node_id, on_message=self._on_message, on_call=self._on_call
        )
        self._drain_pending = False
        tick = options.raft.tick_ms * MS
        self._tick_timer: Timer = cluster.scheduler.call_later(
            cluster.rng.randrange(tick), self._on_tick
        )

    @property
    def machine(self) -> KVStateMachine:
        """The state machine as this node has applied it."""
        return self.replica.machine

    def stop(self) -> None:
        """Kill this incarnation: no more ticks, sends, drains or replies."""
        self.alive = False
        self._tick_timer.cancel()

    # -- events ---------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        if not self.alive:
            return
        self._tick_timer = self.cluster.scheduler.call_later(
            self.cluster.options.raft.tick_ms * MS, self._on_tick
        )
        self.raw.tick()
        self.drain()

    def _on_message(self, src: int, payload: bytes) -> None:
        if not self.alive:
            return
        msg = Message.FromString(payload)
        if msg.sender != src:
            raise self.cluster.fail(f"node {self.id} got a message from {src} naming {msg.sender}")
        self.raw.step(msg)
        self.drain()

    def _on_call(self, src: int, request: bytes, respond: Callable[[bytes], None]) -> None:
        if not self.alive:
            return
        responder = _Responder(self, respond)
        try:
            parsed = decode_request(request)
        except WireError:
            responder.reject(ERR_BAD_REQUEST)
            return
        if isinstance(parsed, GetRequest):
            key = parsed.key
            # The injected bug of ``stale_reads``: a node that believes it leads answers from its
            # own state without confirming leadership (no ReadIndex round).
            stale = self.cluster.options.stale_reads and self.raw.role is Role.LEADER
            self.replica.read(lambda m: m.get(key), responder, stale=stale)
        else:
            parsed.now_ms = self.cluster.scheduler.now // MS
            self.replica.propose(parsed, responder)
        self.schedule_drain()

    def schedule_drain(self) -> None:
        """Drain at the current instant, after whatever else is due now (batches requests)."""
        if self._drain_pending:
            return
        self._drain_pending = True

        def run() -> None:
            self._drain_pending = False
            if self.alive:
                self.drain()

        self.cluster.scheduler.call_later(0, run)

    # -- the runner loop ------------------------------------------------------------------------

    def drain(self) -> None:
        """Handle every pending Ready through the Replica, showing each to the checker."""
        checker = self.cluster.checker
        raw = self.raw
        node_id = self.id
        while self.replica.handle_ready(self._persisted):
            rd = raw.last_ready
            assert rd is not None  # handle_ready took one
            installed = _installed(rd)
            if installed is not None:
                self.snapshots_installed += 1
                checker.on_restore(node_id, installed.index, ())
                self._applied = max(self._applied, installed.index)
                self._snapshot_index = max(self._snapshot_index, installed.index)
            for entry in rd.committed_entries:
                if entry.index > self._applied:
                    checker.on_apply(node_id, entry)
                    self._applied = entry.index
            compacted = self.storage.first_index() - 1
            if compacted > self._snapshot_index:
                checker.on_compact(node_id, self.storage.snapshot_metadata())
                self._snapshot_index = compacted

    def _persisted(self, messages: list[Message]) -> None:
        """The Replica's send callback: it has just persisted the current Ready."""
        rd = self.raw.last_ready
        assert rd is not None  # called from inside handle_ready
        checker = self.cluster.checker
        checker.on_persist(self.id, _installed(rd), rd.entries, rd.hard_state)
        if rd.soft_state is not None:
            checker.on_role(self.id, rd.soft_state.role is Role.LEADER, self.raw.term)
        port = self.port
        counts = self.cluster.messages_sent
        for msg in messages:
            if msg.sender != self.id or msg.to == self.id or msg.to == 0:
                raise self.cluster.fail(f"node {self.id} addressed a message badly: {msg}")
            counts[msg.type] = counts.get(msg.type, 0) + 1
            if not port.send(msg.to, msg.SerializeToString(), is_request=msg.type in REQUEST_TYPES):
                # As a real runner does on a refused connection: stop streaming, probe instead.
                self.raw.report_unreachable(msg.to)
