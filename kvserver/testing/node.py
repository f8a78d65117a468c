"""One simulated KV server: a Raft core, its MemoryStorage and a :class:`~kvserver.replica.Replica`.

Theory of operation
-------------------
A :class:`KVNode` is a :class:`raftcore.testing.runtime.SimNodeBase`: that runtime drives it by its
tick timer, Raft messages and client requests, which arrive as ``Port.call`` requests
(:mod:`kvserver.testing.wire`) and become ``Replica.propose`` / ``Replica.read`` calls followed by
a scheduled drain. Everything reaches the core through the Replica, as in ``kvserver.node``.

The drain is the real node's pipeline (``kvserver.node.Node._process``), with the fdatasync
thread replaced by a virtual-time delay (``KVCluster.fsync_delay``): ``Replica.begin_ready``
writes a Ready without syncing it, sends what the core lets leave at once and applies what it
hands out; if the Ready must be synced, the drain stops there, and only when the delay has passed
does storage sync (a crash before that keeps none of the Ready) and ``Replica.finish_ready`` send
the rest and advance. Meanwhile messages, ticks and requests are stepped into the core and wait
for the next Ready, as they do while a real sync runs.

The leader stamps each write with its wall clock (``now_ms``, :meth:`KVCluster.wall_clock_ms`,
which a scenario may make jump) before proposing it; applied in log order, that stamp drives
session expiry identically on every node.

The Raft-level :class:`~raftcore.testing.invariants.InvariantChecker` watches every step: each
Ready is reported persisted when it is durable (at the end of its sync, or when it is written if
it needs none), and every entry when the Replica has applied it.

Crash and restart follow 6.5840: only the MemoryStorage's synced state survives (as a copy); a new
node restores the state machine from the storage's snapshot
(:func:`kvserver.replica.restore_machine`) and the core replays the log after it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Result
from kvserver.replica import Replica, restore_machine
from kvserver.state_machine import KVStateMachine
from kvserver.testing.options import KVClusterOptions
from kvserver.testing.wire import GetRequest, WireError, decode_request, encode_reply
from raftcore import RawNode, Ready, Role
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Message, SnapshotMetadata
from raftcore.testing.runtime import SimClusterBase, SimNodeBase

__all__ = ["KVNode"]

"""The error a server answers to request bytes it cannot parse."""


class _Responder:
    """Turns the Replica's answer into the reply bytes of one client call."""

    __slots__ = ("_replica", "_respond")

    def __init__(self, replica: Replica, respond: Callable[[bytes], None]) -> None:
        self._replica = replica
        self._respond = respond

    def resolve(self, value: Result | bytes | None) -> None:
        if isinstance(value, Result):
            result = value
        elif value is None:
            result = Result(err=Err.NO_KEY)
        else:
            result = Result(err=Err.OK, value=value)
        self._respond(encode_reply(self._replica.leader_hint, result))

    def reject(self, err: str) -> None:
        self._respond(encode_reply(self._replica.leader_hint, Result(err=err)))


def _installed(rd: Ready) -> SnapshotMetadata | None:
    # ReadyPersister installs the snapshot whose last chunk is in this Ready.
    for chunk in reversed(rd.snapshot_chunks):
        if chunk.done:
            return chunk.metadata
    return None


class KVNode(SimNodeBase):
    """One incarnation of one KV server; dead after :meth:`KVCluster.crash`."""

    def __init__(
        self,
        cluster: SimClusterBase[Any],
        node_id: int,
        storage: MemoryStorage,
        rng: random.Random,
        *,
        options: KVClusterOptions,
        wall_clock_ms: Callable[[], int],
        fsync_delay: Callable[[], int],
    ) -> None:
        self.snapshots_installed = 0
        """Snapshots this incarnation received from a leader (InstallSnapshot)."""
        self.options = options
        self._wall_clock_ms = wall_clock_ms
        self._fsync_delay = fsync_delay
        self._syncing: Ready | None = None  # the Ready whose (virtual) sync runs
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
        core = RawNode(
            cluster.config_for(node_id),
            storage,
            rng,
            applied=meta.index,
            clock=cluster.core_clock(node_id),
        )
        self.replica = Replica(core, storage, machine, max_raft_state=options.max_raft_state)
        self._applied = meta.index
        self._snapshot_index = meta.index
        super().__init__(cluster, node_id, storage, self.replica, serve=self._serve_client)

    @property
    def machine(self) -> KVStateMachine:
        """The state machine as this node has applied it."""
        return self.replica.machine

    # -- events ---------------------------------------------------------------------------------

    def deliver(self, msg: Message) -> None:
        """Step ``msg`` into the core, through the Replica."""
        self.replica.step((msg,))

    def _serve_client(self, src: int, request: bytes, respond: Callable[[bytes], None]) -> None:
        responder = _Responder(self.replica, respond)
        try:
            parsed = decode_request(request)
        except WireError:
            responder.reject(Err.BAD_REQUEST)
            return
        if isinstance(parsed, GetRequest):
            key = parsed.key
            # The injected bug of ``stale_reads``: a node that believes it leads answers from its
            # own state without confirming leadership (no ReadIndex round).
            stale = self.options.stale_reads and self.replica.role is Role.LEADER
            self.replica.read(lambda m: m.get(key), responder, stale=stale)
        else:
            parsed.now_ms = self._wall_clock_ms()
            self.replica.propose(parsed, responder)
        self.schedule_drain()

    # -- the runner loop ------------------------------------------------------------------------

    def drain(self) -> None:
        """Run the Readys through the Replica until one must wait for its sync, or none is left."""
        if self._syncing is not None:
            return  # the end of the sync drains again
        replica = self.replica
        while (rd := replica.begin_ready(self.send, sync=False)) is not None:
            self._observe_applied(rd)
            if rd.must_sync:
                self._syncing = rd
                self.cluster.scheduler.call_later(self._fsync_delay(), self._synced)
                return
            self._finish(rd)

    def _synced(self) -> None:
        """The sync of the Ready in flight returned (the loop runs it when it is not stalled)."""
        if not self.alive or self._deferred(self._synced):
            return
        rd = self._syncing
        assert rd is not None
        self.storage.sync()
        self._syncing = None
        self._finish(rd)
        self.drain()

    def _finish(self, rd: Ready) -> None:
        """``rd`` is durable (synced, or needing no sync): show the checker, then let the Replica
        finish it."""
        installed = _installed(rd)
        self.check_persisted(rd, installed)
        self.replica.finish_ready(self.send)
        if installed is not None:
            self.snapshots_installed += 1
            self.cluster.checker.on_restore(self.id, installed.index, ())
            self._applied = max(self._applied, installed.index)
            self._snapshot_index = max(self._snapshot_index, installed.index)
        self._observe_applied(rd)
        compacted = self.storage.first_index() - 1
        if compacted > self._snapshot_index:
            self.cluster.checker.on_compact(self.id, self.storage.snapshot_metadata())
            self._snapshot_index = compacted

    def _observe_applied(self, rd: Ready) -> None:
        """Show the checker the entries of ``rd`` the Replica has applied by now."""
        checker = self.cluster.checker
        applied = self.replica.applied_index
        for entry in rd.committed_entries:
            if self._applied < entry.index <= applied:
                checker.on_apply(self.id, entry)
                self._applied = entry.index
