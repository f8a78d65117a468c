"""What every simulated cluster shares: node event plumbing, cluster seeding and faults.

Theory of operation
-------------------
A simulated node (:class:`SimNodeBase`) is one incarnation of one server: a ``RawNode`` over a
``MemoryStorage``, attached to the :class:`~raftcore.testing.network.SimNetwork` and driven by its
tick timer (every ``tick_ms`` of virtual time, at a random phase), Raft messages, and (for a
server that serves clients) ``Port.call`` requests. After each event it runs :meth:`drain`, the
one thing a subclass supplies: how its application consumes Readys. Requests only *schedule* the
drain at the current instant (:meth:`SimNodeBase.schedule_drain`), so requests arriving together
leave in one Ready, as a real runner batches them. The base also sends a Ready's messages
(refused sends become ``report_unreachable``, as a real runner does on a refused connection) and
shows each persisted Ready to the :class:`~raftcore.testing.invariants.InvariantChecker`.

A simulated cluster (:class:`SimClusterBase`) owns one scheduler, one network and one checker,
and nodes built by its :meth:`SimClusterBase.new_node` factory: 1..n, the birth configuration's
voters, then any node that joins later (:meth:`SimClusterBase.join`: empty storage and no
configuration, as a server started to be added is). Its randomness comes from one run seed in a
fixed order (the driver's stream, the nodes' stream, any streams a subclass draws in
:meth:`SimClusterBase.draw_streams`, then the network's), so a run is a pure function of its
seed and options. Crash keeps only the node's storage; restart builds a new node from a copy of
it and leaves it disconnected until :meth:`SimClusterBase.connect`, as 6.5840's
``crash1``/``start1`` do. A node removed from the cluster may be stopped for good
(:meth:`SimClusterBase.retire`); its id stays taken, as the core never gives an id out twice.
Driver processes (:mod:`raftcore.testing.process`) run on the same scheduler.

Two faults live in the node's runtime rather than the network. Each node has a monotonic clock
of its own (:class:`SimClock`, kept across restarts as a machine's is), virtual time scaled by a
rate (:meth:`SimClusterBase.set_clock_rate`): the node's tick timer runs on it, and so does the
clock its core reads, so a slow clock ticks, heartbeats and measures leases slowly. And a node's
loop can stall (:meth:`SimClusterBase.stall`, a GC pause or a long snapshot encode): nothing of it
runs until the stall ends; then the messages and calls that arrived meanwhile are handled in
arrival order and one late tick fires, the missed ones being dropped as ``kvserver.node`` does.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from raftcore import Config, Ready
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Message, MessageType, SnapshotMetadata
from raftcore.testing.invariants import InvariantChecker, SimulationFailure
from raftcore.testing.network import CallHandler, Port, SimNetwork
from raftcore.testing.process import Proc, Process, spawn
from raftcore.testing.scheduler import MS, SECOND, Scheduler, Timer

__all__ = [
    "REQUEST_TYPES",
    "ClusterOptions",
    "SimClock",
    "SimClusterBase",
    "SimCore",
    "SimNodeBase",
]

T = TypeVar("T")

REQUEST_TYPES = frozenset(
    {
        MessageType.MSG_APPEND,
        MessageType.MSG_HEARTBEAT,
        MessageType.MSG_VOTE,
        MessageType.MSG_PRE_VOTE,
        MessageType.MSG_SNAPSHOT,
        MessageType.MSG_TIMEOUT_NOW,
        MessageType.MSG_READ_INDEX,
    }
)
"""Message types that count as RPCs (requests); every other remote type is a reply."""

_VOTE_REQUESTS = frozenset({MessageType.MSG_VOTE, MessageType.MSG_PRE_VOTE})


@dataclass(frozen=True)
class ClusterOptions:
    """How a simulated cluster's Raft cores are built; see :mod:`raftcore.testing.cluster` for
    the timing rationale."""

    tick_ms: int = 10
    election_tick: int = 30
    heartbeat_tick: int = 10
    pre_vote: bool = True
    check_quorum: bool = True
    max_msg_bytes: int = 1 << 20
    max_inflight_msgs: int = 256
    snapshot_chunk_bytes: int = 1 << 20
    snapshot_every: int | None = None
    """The application snapshots (and compacts the log) every this many applied entries."""
    lease_drift_margin: float = 0.1
    """``Config.lease_drift_margin``: how much shorter than the election timeout a lease is."""
    promote_lag: int = 1000
    """``Config.promote_lag``: how close to the leader's log a learner must be to be promoted."""


class SimClock:
    """One node's monotonic clock: virtual time scaled by ``rate`` (1.0 keeps true time; 0.9
    runs 10 % slow). Readings are continuous across rate changes and never decrease."""

    __slots__ = ("_base_local", "_base_real", "_rate", "_scheduler")

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._base_real = scheduler.now
        self._base_local = float(scheduler.now)
        self._rate = 1.0

    @property
    def rate(self) -> float:
        """How fast this clock runs relative to virtual time."""
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Run at ``rate`` from now on (positive); ValueError otherwise."""
        if rate <= 0:
            raise ValueError(f"a clock rate must be positive, not {rate}")
        self._base_local = self.read()
        self._base_real = self._scheduler.now
        self._rate = rate

    def read(self) -> float:
        """The clock's reading in (local) microseconds."""
        return self._base_local + (self._scheduler.now - self._base_real) * self._rate

    def real_delay(self, local_us: int) -> int:
        """Virtual microseconds until this clock has advanced ``local_us``."""
        return -(-local_us * 1_000_000 // round(self._rate * 1_000_000))


class SimCore(Protocol):
    """What the runtime ticks and tells about lost messages: a ``RawNode``, or the application
    object that owns one (a KV ``Replica``)."""

    def tick(self) -> None:
        """One tick passed."""
        ...

    def report_unreachable(self, peer: int) -> None:
        """A message to ``peer`` could not be sent."""
        ...

    @property
    def term(self) -> int:
        """The current term."""
        ...


class SimNodeBase(ABC):
    """One incarnation of one simulated node; dead after :meth:`SimClusterBase.crash`.

    A subclass builds its core (and application) first, then calls this constructor, which
    attaches the node to the network (``serve`` answers ``Port.call`` requests while the node is
    alive) and starts its tick timer.
    """

    def __init__(
        self,
        cluster: SimClusterBase[Any],
        node_id: int,
        storage: MemoryStorage,
        core: SimCore,
        serve: CallHandler | None = None,
    ) -> None:
        self.id = node_id
        self.cluster = cluster
        self.storage = storage
        self.core = core
        self.alive = True
        self._serve = serve
        self.port: Port = cluster.network.attach(
            node_id,
            on_message=self._on_message,
            on_call=None if serve is None else self._on_call,
        )
        self._drain_pending = False
        self._stalled_until = 0
        self.clock = cluster.clocks[node_id]
        tick = cluster.raft_options.tick_ms * MS
        self._tick_timer: Timer = cluster.scheduler.call_later(
            self.clock.real_delay(cluster.rng.randrange(tick)), self._on_tick
        )

    def stop(self) -> None:
        """Kill this incarnation: no more ticks, sends, drains or replies."""
        self.alive = False
        self._tick_timer.cancel()

    def stall(self, duration: int) -> None:
        """Freeze this node's loop for ``duration`` virtual microseconds from now."""
        self._stalled_until = max(self._stalled_until, self.cluster.scheduler.now + duration)

    def _deferred(self, callback: Callable[[], None]) -> bool:
        """While the loop is stalled, queue ``callback`` for when it runs again: True if so."""
        if self._stalled_until <= self.cluster.scheduler.now:
            return False
        self.cluster.scheduler.call_at(self._stalled_until, callback)
        return True

    # -- events ---------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        if not self.alive or self._deferred(self._on_tick):
            return  # a stalled loop fires one late tick when it resumes
        self._tick_timer = self.cluster.scheduler.call_later(
            self.clock.real_delay(self.cluster.raft_options.tick_ms * MS), self._on_tick
        )
        self.core.tick()
        self.drain()

    def _on_message(self, src: int, payload: bytes) -> None:
        if not self.alive or self._deferred(lambda: self._on_message(src, payload)):
            return
        msg = Message.FromString(payload)
        if msg.sender != src:
            raise self.cluster.fail(f"node {self.id} got a message from {src} naming {msg.sender}")
        self.deliver(msg)
        self.drain()

    def _on_call(self, src: int, request: bytes, respond: Callable[[bytes], None]) -> None:
        if self._deferred(lambda: self._on_call(src, request, respond)):
            return
        if self.alive and self._serve is not None:
            self._serve(src, request, respond)

    def schedule_drain(self) -> None:
        """Drain at the current instant, after whatever else is due now (batches requests)."""
        if self._drain_pending:
            return
        self._drain_pending = True

        def run() -> None:
            if self._deferred(run):
                return
            self._drain_pending = False
            if self.alive:
                self.drain()

        self.cluster.scheduler.call_later(0, run)

    # -- the runner loop ------------------------------------------------------------------------

    @abstractmethod
    def deliver(self, msg: Message) -> None:
        """Step one Raft message from a peer into the core."""

    @abstractmethod
    def drain(self) -> None:
        """Handle every pending Ready; call :meth:`check_persisted` and :meth:`send` for each."""

    def check_persisted(self, rd: Ready, installed: SnapshotMetadata | None) -> None:
        """Show the checker a Ready just persisted (``installed``: the snapshot it installed)."""
        checker = self.cluster.checker
        checker.on_persist(self.id, installed, rd.entries, rd.hard_state, rd.must_sync)
        if rd.soft_state is not None:
            checker.on_role(self.id, rd.soft_state.role, self.core.term)

    def send(self, messages: Iterable[Message]) -> None:
        """Hand a Ready's messages to the network, counting them by type."""
        port = self.port
        counts = self.cluster.messages_sent
        for msg in messages:
            if msg.sender != self.id or msg.to == self.id or msg.to == 0:
                raise self.cluster.fail(f"node {self.id} addressed a message badly: {msg}")
            counts[msg.type] = counts.get(msg.type, 0) + 1
            if msg.type in _VOTE_REQUESTS:
                self.cluster.checker.on_vote_request(self.id, msg.term)
            if not port.send(msg.to, msg.SerializeToString(), is_request=msg.type in REQUEST_TYPES):
                # As a real runner does on a refused connection: stop streaming, probe instead.
                self.core.report_unreachable(msg.to)


N = TypeVar("N", bound=SimNodeBase)


class SimClusterBase(ABC, Generic[N]):
    """N simulated nodes (ids 1..n, and any that join later) of type ``N`` on one network, with
    seeding, faults and driver processes; a subclass supplies :meth:`new_node`."""

    def __init__(
        self, n: int, seed: int, raft_options: ClusterOptions, *, reliable: bool = True
    ) -> None:
        if n < 1:
            raise ValueError(f"a cluster needs at least one node, got {n}")
        self.n = n
        """How many nodes the cluster was born with (its first voters, ids 1..n)."""
        self.seed = seed
        self.raft_options = raft_options
        master = random.Random(seed)
        self.rng = random.Random(master.getrandbits(64))
        """The test driver's own randomness (which node to cut, which command to send)."""
        self._node_seeds = random.Random(master.getrandbits(64))
        self.draw_streams(master)
        self.scheduler = Scheduler()
        self.network = SimNetwork(self.scheduler, random.Random(master.getrandbits(64)))
        self.network.reliable = reliable
        self.birth = tuple(range(1, n + 1))
        """The birth configuration's voters."""
        self.checker = InvariantChecker(seed, lambda: self.scheduler.now, voters=self.birth)
        self.messages_sent: dict[int, int] = {}
        """Raft messages the nodes handed to the network, by ``MessageType`` (lost ones too)."""
        self.ids = self.birth
        """Every node ever started, in the order they were (ids are never reused)."""
        self.retired: set[int] = set()
        """Nodes stopped for good (:meth:`retire`)."""
        self.clocks = {i: SimClock(self.scheduler) for i in self.ids}
        """Each node's monotonic clock; it outlives the node's incarnations."""
        self.nodes: dict[int, N | None] = {}
        self.saved: dict[int, MemoryStorage] = {}
        for i in self.ids:
            self.saved[i] = MemoryStorage(voters=self.ids)
            self.nodes[i] = None
        for i in self.ids:
            self.restart(i)
            self.connect(i)

    def draw_streams(self, master: random.Random) -> None:
        """Draw a subclass's own random streams from ``master`` (none here); runs during the
        constructor, after the driver's and the nodes' streams and before the network's."""

    @abstractmethod
    def new_node(self, node_id: int, storage: MemoryStorage, rng: random.Random) -> N:
        """Build and start one incarnation of node ``node_id`` over ``storage``."""

    # -- plumbing -------------------------------------------------------------------------------

    def fail(self, message: str) -> SimulationFailure:
        """Build the failure to raise, naming the seed and the virtual time."""
        return SimulationFailure(self.seed, self.scheduler.now, message)

    def config_for(self, node_id: int) -> Config:
        """The core's configuration for ``node_id``: a node that joined knows no voters (the
        leader's log tells it)."""
        o = self.raft_options
        return Config(
            id=node_id,
            voters=self.birth if node_id in self.birth else (),
            election_tick=o.election_tick,
            heartbeat_tick=o.heartbeat_tick,
            pre_vote=o.pre_vote,
            check_quorum=o.check_quorum,
            max_msg_bytes=o.max_msg_bytes,
            max_inflight_msgs=o.max_inflight_msgs,
            snapshot_chunk_bytes=o.snapshot_chunk_bytes,
            lease_drift_margin=o.lease_drift_margin,
            promote_lag=o.promote_lag,
        )

    def core_clock(self, node_id: int) -> Callable[[], float]:
        """The monotonic clock ``node_id``'s core reads, in ticks (``RawNode``'s ``clock``)."""
        read = self.clocks[node_id].read
        tick = self.raft_options.tick_ms * MS
        return lambda: read() / tick

    @property
    def now(self) -> int:
        """Virtual time in microseconds."""
        return self.scheduler.now

    def sleep(self, duration: int) -> None:
        """Let ``duration`` virtual microseconds pass."""
        self.scheduler.run_for(duration)

    def spawn(self, gen: Proc[T]) -> Process[T]:
        """Start a driver process now; it runs as virtual time passes."""
        return spawn(self.scheduler, gen)

    def run(self, gen: Proc[T], limit: int = 600 * SECOND) -> T:
        """Run one driver process to completion (everything else runs meanwhile); its result.

        Raises :class:`SimulationFailure` if it has not finished after ``limit`` virtual us.
        """
        proc = self.spawn(gen)
        self.wait_done([proc], limit)
        return proc.result

    def wait_done(self, procs: list[Process[Any]], limit: int = 600 * SECOND) -> None:
        """Let time pass until every process in ``procs`` finished (at most ``limit``)."""
        if not self.scheduler.run_until_true(lambda: all(p.done for p in procs), self.now + limit):
            raise self.fail("driver processes did not finish")

    # -- faults ---------------------------------------------------------------------------------

    def alive(self, i: int) -> bool:
        """Whether node ``i`` is running (not crashed)."""
        return self.nodes[i] is not None

    def connected(self, i: int) -> bool:
        """Whether node ``i`` runs and is connected (6.5840's ``cfg.connected[i]``)."""
        return self.nodes[i] is not None and self.network.is_connected(i)

    def connect(self, i: int) -> None:
        """Reconnect node (or client address) ``i`` to the network (both directions)."""
        self.network.connect(i)

    def disconnect(self, i: int) -> None:
        """Cut node (or client address) ``i`` off in both directions."""
        self.network.disconnect(i)

    def set_clock_rate(self, i: int, rate: float) -> None:
        """Make node ``i``'s monotonic clock (ticks and what its core reads) run at ``rate``."""
        self.clocks[i].set_rate(rate)

    def stall(self, i: int, duration: int) -> None:
        """Freeze running node ``i``'s loop for ``duration`` virtual microseconds."""
        self.node(i).stall(duration)

    def crash(self, i: int) -> None:
        """Crash node ``i``: only its persisted storage survives; it is also disconnected."""
        self.disconnect(i)
        node = self.nodes[i]
        if node is None:
            return
        node.stop()
        self.network.detach(i)
        self.checker.on_crash(i)
        self.saved[i] = node.storage
        self.nodes[i] = None

    def restart(self, i: int) -> None:
        """(Re)start node ``i`` from a copy of its persisted storage; crashes it first if needed.

        The node stays disconnected until :meth:`connect` (as 6.5840's ``start1``).
        """
        if i in self.retired:
            raise self.fail(f"node {i} was retired: it never comes back")
        if self.nodes[i] is not None:
            self.crash(i)
        storage = self.saved[i].copy()
        self.nodes[i] = self.new_node(i, storage, random.Random(self._node_seeds.getrandbits(64)))

    def join(self, i: int) -> None:
        """Start node ``i``, just added to the cluster, as a new server joins: empty storage, no
        configuration, connected. A node already started is left as it is: an add that
        vanished (never committed) may have handed out the same id, which the next add then
        gives out again."""
        if i in self.retired:
            raise self.fail(f"node {i} was retired: its id cannot be given out again")
        if i in self.clocks:
            return
        self.ids = (*self.ids, i)
        self.clocks[i] = SimClock(self.scheduler)
        self.saved[i] = MemoryStorage()
        self.nodes[i] = None
        self.restart(i)
        self.connect(i)

    def retire(self, i: int) -> None:
        """Stop node ``i`` for good (a removed server shut down): it is never restarted."""
        self.crash(i)
        self.retired.add(i)

    @property
    def active(self) -> tuple[int, ...]:
        """Every node not retired, running or crashed."""
        return tuple(i for i in self.ids if i not in self.retired)

    def node(self, i: int) -> N:
        """The running node ``i`` (raises if it is crashed)."""
        node = self.nodes[i]
        if node is None:
            raise self.fail(f"node {i} is crashed")
        return node

    # -- observations ---------------------------------------------------------------------------

    def persisted(self, i: int) -> MemoryStorage:
        """Node ``i``'s storage: the running node's, or what survived its crash."""
        node = self.nodes[i]
        return node.storage if node is not None else self.saved[i]

    def raft_state_size(self, i: int) -> int:
        """Bytes of node ``i``'s persisted Raft state: hard state plus log, snapshot excluded
        (6.5840's ``RaftStateSize``)."""
        storage = self.persisted(i)
        hard_state, _ = storage.initial_state()
        entries = storage.entries(storage.first_index(), storage.last_index() + 1)
        return hard_state.ByteSize() + sum(e.ByteSize() for e in entries)

    def log_size(self) -> int:
        """The largest persisted Raft state of any node (6.5840's ``LogSize``)."""
        return max(self.raft_state_size(i) for i in self.ids)
