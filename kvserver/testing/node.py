"""One simulated KV server: a Raft core, its MemoryStorage and a :class:`~kvserver.replica.Replica`.

Theory of operation
-------------------
A :class:`KVNode` is a :class:`raftcore.testing.runtime.SimNodeBase`: that runtime drives it by its
tick timer, Raft messages and client requests, which arrive as ``Port.call`` requests
(:mod:`kvserver.testing.wire`) and become ``Replica.propose`` / ``Replica.read`` calls followed by
a scheduled drain. This module supplies the drain: Readys go through ``Replica.handle_ready``
(persist, send, apply, serve reads, maybe snapshot, advance).

The leader stamps each write with its wall clock (``now_ms``, :meth:`KVCluster.wall_clock_ms`,
which a scenario may make jump) before proposing it; applied in log order, that stamp drives
session expiry identically on every node.

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

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Result
from kvserver.replica import Replica, restore_machine
from kvserver.state_machine import KVStateMachine
from kvserver.testing.wire import GetRequest, WireError, decode_request, encode_reply
from raftcore import RawNode, Ready, Role
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Message, SnapshotMetadata
from raftcore.testing.runtime import SimNodeBase

if TYPE_CHECKING:
    from collections.abc import Callable

    from kvserver.testing.cluster import KVCluster

__all__ = ["KVNode"]

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
            result = Result(err=Err.NO_KEY)
        else:
            result = Result(err=Err.OK, value=value)
        self._respond(encode_reply(self._node.raw.leader_id, result))

    def reject(self, err: str) -> None:
        self._respond(encode_reply(self._node.raw.leader_id, Result(err=err)))


def _installed(rd: Ready) -> SnapshotMetadata | None:
    # ReadyPersister installs the snapshot whose last chunk is in this Ready.
    for chunk in reversed(rd.snapshot_chunks):
        if chunk.done:
            return chunk.metadata
    return None


class KVNode(SimNodeBase):
    """One incarnation of one KV server; dead after :meth:`KVCluster.crash`."""

    cluster: KVCluster
    raw: _ObservedRawNode

    def __init__(
        self, cluster: KVCluster, node_id: int, storage: MemoryStorage, rng: random.Random
    ) -> None:
        self.snapshots_installed = 0
        """Snapshots this incarnation received from a leader (InstallSnapshot)."""
        options = cluster.options
        machine = KVStateMachine(
            random.Random(rng.getrandbits(64)),
            session_max_idle_ms=options.session_max_idle_ms,
            session_clock_step_ms=options.session_clock_step_ms,
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
        raw = _ObservedRawNode(
            cluster.config_for(node_id),
            storage,
            rng,
            applied=meta.index,
            clock=cluster.core_clock(node_id),
        )
        self.replica = Replica(raw, storage, machine, max_raft_state=options.max_raft_state)
        self._applied = meta.index
        self._snapshot_index = meta.index
        super().__init__(cluster, node_id, storage, raw, serve=self._serve_client)

    @property
    def machine(self) -> KVStateMachine:
        """The state machine as this node has applied it."""
        return self.replica.machine

    # -- events ---------------------------------------------------------------------------------

    def _serve_client(self, src: int, request: bytes, respond: Callable[[bytes], None]) -> None:
        responder = _Responder(self, respond)
        try:
            parsed = decode_request(request)
        except WireError:
            responder.reject(Err.BAD_REQUEST)
            return
        if isinstance(parsed, GetRequest):
            key = parsed.key
            # The injected bug of ``stale_reads``: a node that believes it leads answers from its
            # own state without confirming leadership (no ReadIndex round).
            stale = self.cluster.options.stale_reads and self.raw.role is Role.LEADER
            self.replica.read(lambda m: m.get(key), responder, stale=stale)
        else:
            parsed.now_ms = self.cluster.wall_clock_ms(self.id)
            self.replica.propose(parsed, responder)
        self.schedule_drain()

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
        self.check_persisted(rd, _installed(rd))
        self.send(messages)
