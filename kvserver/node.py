"""One raftkv node: a Raft core, its disk storage and the KV replica, run by one asyncio loop.

The node serves ``kvServerRpc`` (clients, :mod:`kvserver.service`) and ``raftRpc`` (peers) on one
port, as the original did, and beside them ``nodeAdmin`` (kvapi/admin.proto: :meth:`Node.status`
for operators, and the membership methods, :mod:`kvserver.membership_admin`).

Theory of operation
-------------------
Everything that touches the Raft core or the replica runs on the loop's thread, so nothing needs a
lock. Three things wake the node: the tick timer (every ``tick_ms`` of monotonic time), a batch of
Raft messages from a peer (the ``raftRpc.Deliver`` handler steps them into the core), and client
requests (the KV service hands them to the replica). Each of them only schedules one run of
``_process``, which drains every Ready the core has: persist it, hand its messages to the per-peer
senders, apply its committed entries, answer the waiting requests, advance.

The fdatasync does not block the loop: ``Replica.begin_ready`` writes a Ready to the WAL (page
cache) and does what the core says need not wait for the sync (a leader's messages, committed
entries and the answers they settle); ``_process`` then runs the one fdatasync on a dedicated
thread and calls ``Replica.finish_ready`` (the votes and acknowledgements, the advance) when it
returns. Which messages may leave early and which entries may be applied is the core's decision
(``raftcore.Ready``); the node holds no durability rule of its own. Meanwhile the loop keeps
reading requests and peers' messages and steps them into the core, which is allowed between
``ready()`` and ``advance()``; all of it goes into the next Ready, so one sync covers everything
that arrived during the previous one (group commit without a timer). The thread touches only the
file: storage's in-memory state changes on the loop, never while a sync runs. A Ready that
changes nothing but the commit index needs no sync at all.
A failed fdatasync is fatal (the kernel may have dropped the pages it could not write, so only a
restart that reads the WAL back knows what is durable).

Messages to a peer go out as ``Deliver`` calls on that peer's long-lived channel, with a few
calls in flight at once (pipelining) and everything queued meanwhile batched into the next calls.
The queue and the calls are bounded (flow control, :mod:`kvserver.peer_sender`): what does not
fit is dropped and the core told to probe the peer. A failed call only tells the core the peer is
unreachable: Raft retransmits on its own, so the transport never retries.

Membership: the peers are whoever the configuration names (:mod:`kvserver.peer_book`), so they
change with every membership change; test.conf only seeds a new cluster (and names the members
of data written before addresses were kept). A node started with ``join`` and a fresh data
directory has no configuration and waits for the leader that added it to send it the log. A
node whose removal is applied here, or that a peer tells so (``DeliverReply.sender_removed``:
that peer applied the removal), logs it and stops; ids are never reused, so it cannot rejoin.
With ``force_new_cluster`` the node first appends a configuration naming itself alone
(quorum-loss recovery, :func:`kvserver.force_new_cluster.force_new_cluster`).

A storage failure (disk full, I/O error) stalls the node instead of killing it: nothing of the
failed Ready is sent or acknowledged, pending requests fail, and the same Ready is retried every
``storage_retry_s`` until the disk accepts it again (a lost snapshot transfer, or a failed restore
from a snapshot, is retried the ways ``kvserver.replica`` describes). It is logged once when it
starts and once when it ends. Any other error inside the loop is fatal: it
is logged and :meth:`Node.wait_stopped` raises it, so the process exits non-zero instead of
hanging.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kvapi.admin_pb2 import StatusReply, StatusRequest
from kvapi.config import format_address, parse_address
from kvapi.nodes import node_name
from kvapi.stubs import NodeAdmin
from kvserver.force_new_cluster import force_new_cluster
from kvserver.membership_admin import MembershipAdmin
from kvserver.peer_book import PeerBook
from kvserver.peer_sender import PeerSender
from kvserver.raft_rpc import RaftRpc
from kvserver.raft_transport_pb2 import DeliverReply, MessageBatch
from kvserver.replica import Replica, restore_machine
from kvserver.service import KVService
from kvserver.state_machine import KVStateMachine
from kvserver.storage import DEFAULT_SEGMENT_BYTES, DiskStorage
from kvserver.sync_thread import SyncThread
from raftcore import Config, RawNode, ReadOnlyOption, Role
from raftcore.raftpb_pb2 import Message
from raftcore.storage import StorageError
from rpc import RpcChannel, RpcController, RpcProvider

__all__ = ["Node", "NodeConfig"]

_log = logging.getLogger(__name__)

_DRAIN_BEFORE_STOP_S = 1.0


@dataclass(frozen=True)
class NodeConfig:
    """Where a node lives and how it paces itself.

    ``peers`` maps the Raft id of every node test.conf names to its (host, port): the voters of
    a new cluster, where a joining node's operator found the cluster, and the addresses of
    members that data written before addresses were kept does not name. The node listens on
    ``listen``, else on its own address in its configuration, else on test.conf's. ``join``: a
    fresh data directory starts with no configuration (the node was added with ``member add``
    and waits for the leader); ``force_new_cluster``: make this node the only member first
    (quorum-loss recovery). Times: one tick is ``tick_ms``; the election timeout is random in
    ``[election_tick, 2 * election_tick)`` ticks and the leader heartbeats every
    ``heartbeat_tick`` ticks. ``max_raft_state`` (bytes of log) triggers a snapshot; None never
    snapshots. ``fsync=False`` is for benchmarks only: a crash then loses acknowledged writes.
    ``segment_bytes``: the write-ahead log starts a new segment file past this size.
    ``lease_reads`` serves linearizable reads from the leader's lease instead of a heartbeat
    round; the lease is ``lease_drift_margin`` (a fraction) shorter than the election timeout and
    assumes the nodes' monotonic clocks run at rates within that fraction of each other
    (:mod:`raftcore.lease`, docs/raftcore.md). A client request waits at most
    ``request_timeout_s`` for its entry to apply before the client is told to retry.
    ``clock_rate`` is for tests only: it makes this node's monotonic clock (its ticks and the
    clock its core's lease reads) run that much faster or slower than the real one.
    """

    node_id: int
    peers: Mapping[int, tuple[str, int]]
    data_dir: Path
    tick_ms: float = 10.0
    election_tick: int = 30
    heartbeat_tick: int = 5
    max_raft_state: int | None = 4 << 20
    fsync: bool = True
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    peer_call_timeout_s: float = 1.0
    max_calls_in_flight_per_peer: int = 4
    storage_retry_s: float = 1.0
    lease_reads: bool = False
    lease_drift_margin: float = 0.1
    request_timeout_s: float = 0.5
    clock_rate: float = 1.0
    listen: tuple[str, int] | None = None
    join: bool = False
    force_new_cluster: bool = False

    def __post_init__(self) -> None:
        if self.join and self.force_new_cluster:
            raise ValueError("join and force_new_cluster exclude each other")
        if self.tick_ms <= 0:
            raise ValueError(f"tick_ms must be positive, not {self.tick_ms}")
        if self.clock_rate <= 0:
            raise ValueError(f"clock_rate must be positive, not {self.clock_rate}")

    @property
    def tick_s(self) -> float:
        """Real seconds per tick: ``tick_ms`` of this node's (possibly scaled) clock."""
        return self.tick_ms / 1000 / self.clock_rate

    @property
    def address(self) -> tuple[str, int] | None:
        """Where this node listens if the configuration says (else its data directory does)."""
        return self.listen or self.peers.get(self.node_id)


class Node:
    """A running node. ``await start()``, then serve until ``stop()`` or a fatal error."""

    def __init__(self, config: NodeConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random()
        self._provider = RpcProvider()
        self._storage: DiskStorage | None = None
        self._replica: Replica | None = None
        self._peers = PeerBook(
            config.node_id,
            {i: a for i, a in config.peers.items() if i != config.node_id},
            self._open_sender,
        )
        self._address: tuple[str, int] | None = config.address
        self._unreachable: set[int] = set()
        self._process_scheduled = False
        # The fdatasync of the Ready being finished, running on _sync_thread (None when idle).
        self._sync_thread: SyncThread | None = None
        self._syncing: asyncio.Future[None] | None = None  # done when that sync returns
        self._storage_failure: StorageError | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._last_role: tuple[Role, int, int] | None = None
        self._last_snapshot_index = 0
        self._background: set[asyncio.Task[None]] = set()
        self._admin: MembershipAdmin | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open storage, restore the state machine, listen, and start ticking."""
        loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        cfg = self.config
        birth = {} if cfg.join else cfg.peers
        storage = DiskStorage(
            cfg.data_dir,
            fsync=cfg.fsync,
            segment_bytes=cfg.segment_bytes,
            voters=sorted(birth),
            addresses={i: format_address(a) for i, a in birth.items()},
        )
        self._storage = storage
        try:
            raw = self._open_core(loop, storage)
        except BaseException:
            storage.close()
            raise
        if cfg.fsync:
            self._sync_thread = SyncThread(f"fsync-{node_name(cfg.node_id)}")
        machine = KVStateMachine(random.Random(self._rng.random()))
        # The collector is the process's business (cli.server.serve freezes what this
        # restores): library code leaves process-wide state alone.
        restore_machine(storage, machine)
        self._replica = Replica(raw, storage, machine, max_raft_state=cfg.max_raft_state)
        self._last_snapshot_index = storage.snapshot_metadata().index
        self._serve()
        self._peers.sync(self._replica.membership, self._replica.applied_membership)
        host, port = self.address
        try:
            await self._provider.start(host, port)
        except OSError:
            storage.close()
            raise
        _log.info(
            "%s listening on %s:%d, data in %s, term %d, applied %d",
            node_name(cfg.node_id),
            host,
            port,
            cfg.data_dir,
            raw.term,
            raw.applied_index,
        )
        self._schedule_tick(loop.time())

    def _open_core(self, loop: asyncio.AbstractEventLoop, storage: DiskStorage) -> RawNode:
        """The Raft core over ``storage`` (after forcing a new cluster, if asked), and where
        this node listens; ValueError if nothing says where."""
        cfg = self.config
        if cfg.force_new_cluster:
            force_new_cluster(storage, cfg.node_id, cfg.listen, cfg.peers)
        raw = RawNode(
            Config(
                id=cfg.node_id,
                voters=() if cfg.join else tuple(sorted(cfg.peers)),
                election_tick=cfg.election_tick,
                heartbeat_tick=cfg.heartbeat_tick,
                read_only=ReadOnlyOption.LEASE_BASED if cfg.lease_reads else ReadOnlyOption.SAFE,
                lease_drift_margin=cfg.lease_drift_margin,
            ),
            storage,
            random.Random(self._rng.random()),
            applied=storage.snapshot_metadata().index,
            clock=self._core_clock(loop),
        )
        if cfg.listen is None:
            known = raw.membership.addresses.get(cfg.node_id)
            if known:
                self._address = parse_address(known)
        if self._address is None:
            raise ValueError(
                f"{node_name(cfg.node_id)} does not know its address: start it with --listen"
            )
        return raw

    @property
    def admin(self) -> MembershipAdmin:
        """The membership handlers of nodeAdmin (for tests that skip the RPC)."""
        assert self._admin is not None, "start() first"
        return self._admin

    @property
    def address(self) -> tuple[str, int]:
        """Where this node listens (known once started)."""
        assert self._address is not None, "start() first"
        return self._address

    def _serve(self) -> None:
        cfg = self.config
        replica = self.replica
        RaftRpc.serve(self._provider, {"Deliver": self._on_deliver})
        admin = self._admin = MembershipAdmin(replica, self._address_text, self.wakeup)
        NodeAdmin.serve(
            self._provider,
            {
                "Status": self._on_status,
                "MemberList": admin.member_list,
                "MemberAdd": admin.member_add,
                "MemberPromote": admin.member_promote,
                "MemberRemove": admin.member_remove,
                "TransferLeader": admin.transfer_leader,
            },
        )
        KVService(
            replica,
            self.clock_ms,
            self.wakeup,
            request_timeout=cfg.request_timeout_s,
            lease_reads=cfg.lease_reads,
        ).register(self._provider)

    def _open_sender(self, peer: int, address: tuple[str, int]) -> PeerSender:
        cfg = self.config
        return PeerSender(
            peer,
            RpcChannel(*address),
            max_calls=cfg.max_calls_in_flight_per_peer,
            call_timeout=cfg.peer_call_timeout_s,
            on_failed=self.peer_unreachable,
            on_delivered=self.peer_reachable,
            on_dropped=self.peer_overflowed,
        )

    def _address_text(self, member: int) -> str:
        if member == self.config.node_id:
            return format_address(self.address)
        address = self._peers.address_of(member)
        return format_address(address) if address else ""

    async def stop(self) -> None:
        """Stop ticking, stop serving (in-flight calls finish or fail), close storage."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        await self._provider.close()
        await self._peers.close()
        if self._syncing is not None:
            await asyncio.wait([self._syncing])
        if self._sync_thread is not None:
            self._sync_thread.close()
            self._sync_thread = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        _log.info("%s stopped", node_name(self.config.node_id))

    async def wait_stopped(self) -> None:
        """Return when the node was stopped; raise the error that ended it, if one did."""
        assert self._stopped is not None, "start() first"
        await asyncio.shield(self._stopped)

    @property
    def replica(self) -> Replica:
        """The KV replica (for the services and for tests)."""
        assert self._replica is not None, "start() first"
        return self._replica

    def status(self) -> StatusReply:
        """Where this node stands: role, term, leader, its log's indexes and the most it holds
        for one peer (``nodeAdmin``)."""
        replica = self.replica
        status = replica.status()
        host, port = self.address
        membership = replica.membership
        snapshot_index = self._last_snapshot_index
        if self._storage is not None:
            snapshot_index = self._storage.snapshot_metadata().index
        return StatusReply(
            Id=self.config.node_id,
            Host=host.encode(),
            Port=port,
            Role=status.role.value.encode(),
            Term=status.term,
            Leader=status.leader_id,
            Commit=status.commit,
            Applied=replica.applied_index,
            LastIndex=status.last_index,
            SnapshotIndex=snapshot_index,
            PeerHeldBytes=self._peers.held_bytes,
            Learner=self.config.node_id in membership.learners,
            Member=membership.is_member(self.config.node_id),
        )

    def _on_status(self, request: StatusRequest, controller: RpcController) -> StatusReply:
        return self.status()

    @staticmethod
    def clock_ms() -> int:
        """The wall clock stamped into commands (drives session expiry; never trusted for order)."""
        return time.time_ns() // 1_000_000

    # -- driving the core ----------------------------------------------------------------------

    def wakeup(self) -> None:
        """Ask for the core's pending work to be done soon (at most one run is ever queued)."""
        if not self._process_scheduled:
            self._process_scheduled = True
            asyncio.get_running_loop().call_soon(self._process)

    def _core_clock(self, loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
        """The core's monotonic clock in ticks: the loop's clock, the one the tick timer uses.

        The lease and the vote refusal run on it rather than on ticks, which a stalled loop
        drops (``_schedule_tick``)."""
        tick_s = self.config.tick_s
        return lambda: loop.time() / tick_s

    def _schedule_tick(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        next_tick = when + self.config.tick_s
        # Keep the cadence after a stall instead of firing a burst of late ticks: elections and
        # heartbeats only run late, and the lease is measured on the clock (_core_clock).
        if next_tick < loop.time():
            next_tick = loop.time() + self.config.tick_s
        self._tick_handle = loop.call_at(next_tick, self._on_tick, next_tick)

    def _on_tick(self, when: float) -> None:
        self.replica.tick()
        self._process()
        if self._tick_handle is not None:
            self._schedule_tick(when)

    def _process(self) -> None:
        self._process_scheduled = False
        replica = self._replica
        storage = self._storage
        if replica is None or storage is None or self._syncing is not None:
            return  # a finished sync runs _process again
        sync_thread = self._sync_thread
        try:
            while (rd := replica.begin_ready(self._send, sync=sync_thread is None)) is not None:
                if sync_thread is not None and rd.must_sync:
                    self._syncing = asyncio.get_running_loop().create_future()
                    sync_thread.submit(storage.sync, self._synced)
                    return
                replica.finish_ready(self._send)
        except StorageError as exc:
            self._on_storage_failure(exc)
            return
        except Exception as exc:
            self._fatal(exc)
            return
        self._after_ready()

    def _synced(self, error: BaseException | None) -> None:
        if self._syncing is not None:
            self._syncing.set_result(None)
            self._syncing = None
        if self._replica is None or self._storage is None:
            return  # stopped meanwhile
        try:
            if error is not None:
                raise error
            self._replica.finish_ready(self._send)
        except StorageError as exc:
            if error is not None:
                self._fatal(exc)  # a failed fdatasync: only a restart knows what is durable
            else:
                self._on_storage_failure(exc)  # a failed snapshot or restore: retried
            return
        except Exception as exc:
            self._fatal(exc)
            return
        # Logged here too: under steady load every _process run ends by starting a sync.
        self._after_ready()
        self._process()

    def _after_ready(self) -> None:
        # Not before the replica agrees: after a lost snapshot, Readys that touch no disk work.
        if self._storage_failure is not None and not self.replica.storage_failed:
            _log.warning("%s: storage works again", node_name(self.config.node_id))
            self._storage_failure = None
        self._log_role_change()
        self._log_snapshot()
        replica = self.replica
        self._peers.sync(replica.membership, replica.applied_membership)
        if replica.removed:
            self._removed("its removal from the cluster is applied")

    def _send(self, messages: list[Message]) -> None:
        self._peers.send(messages)

    def _on_deliver(self, batch: MessageBatch, controller: RpcController) -> DeliverReply:
        # A plain handler: answered inline, no task per batch (the core never makes it wait).
        replica = self.replica
        for m in batch.messages:
            if m.to != self.config.node_id:
                controller.set_failed(
                    f"message for Raft id {m.to} delivered to {node_name(self.config.node_id)}"
                )
                return DeliverReply()
            if replica.applied_membership.was_removed(m.sender):
                return DeliverReply(sender_removed=True)
        replica.step(batch.messages)
        self.wakeup()
        return DeliverReply()

    def peer_unreachable(self, peer: int, exc: Exception) -> None:
        """A call to ``peer`` failed: tell the core, and log the first failure only."""
        if self._replica is None:
            return
        self._replica.report_unreachable(peer)
        if peer not in self._unreachable:
            self._unreachable.add(peer)
            _log.warning(
                "%s: peer %s unreachable: %s", node_name(self.config.node_id), node_name(peer), exc
            )

    def peer_overflowed(self, peer: int) -> None:
        """Messages to ``peer`` were dropped (its queue is full): stop streaming to it, probe."""
        if self._replica is not None:
            self._replica.report_unreachable(peer)

    def peer_reachable(self, peer: int, reply: DeliverReply) -> None:
        """A call to ``peer`` succeeded: log the recovery of a peer that had been lost; stop
        if it says this node was removed."""
        if reply.sender_removed:
            self._removed(f"{node_name(peer)} says so")
            return
        if peer in self._unreachable:
            self._unreachable.discard(peer)
            _log.info(
                "%s: peer %s reachable again", node_name(self.config.node_id), node_name(peer)
            )

    def _removed(self, why: str) -> None:
        """This node is no member any more: say so once and stop serving."""
        if self._tick_handle is None:
            return  # stopping already
        self._tick_handle.cancel()
        self._tick_handle = None
        _log.warning(
            "%s was removed from the cluster (%s); stopping", node_name(self.config.node_id), why
        )
        task = asyncio.get_running_loop().create_task(self._stop_when_drained())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stop_when_drained(self) -> None:
        # What is queued still matters to the others: a removed leader's last appends carry the
        # commit of its removal, and its MSG_TIMEOUT_NOW lets the successor campaign at once.
        await self._peers.drain(_DRAIN_BEFORE_STOP_S)
        await self.stop()

    def _on_storage_failure(self, exc: StorageError) -> None:
        if self._storage_failure is None:
            _log.error(
                "%s: storage failed, not accepting writes until it recovers: %s",
                node_name(self.config.node_id),
                exc,
            )
        self._storage_failure = exc
        asyncio.get_running_loop().call_later(self.config.storage_retry_s, self.wakeup)

    def _fatal(self, exc: BaseException) -> None:
        _log.critical(
            "%s: fatal error in the Raft loop", node_name(self.config.node_id), exc_info=exc
        )
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_exception(exc)

    def _log_role_change(self) -> None:
        replica = self.replica
        now = (replica.role, replica.term, replica.leader_hint)
        if now != self._last_role:
            self._last_role = now
            _log.info(
                "%s: %s in term %d, leader %s",
                node_name(self.config.node_id),
                replica.role.value,
                replica.term,
                node_name(replica.leader_hint) if replica.leader_hint else "unknown",
            )

    def _log_snapshot(self) -> None:
        if self._storage is None:
            return
        meta = self._storage.snapshot_metadata()
        if meta.index != self._last_snapshot_index:
            self._last_snapshot_index = meta.index
            _log.info(
                "%s: snapshot now at index %d (term %d)",
                node_name(self.config.node_id),
                meta.index,
                meta.term,
            )
