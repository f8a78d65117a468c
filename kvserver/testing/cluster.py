"""A simulated KV cluster in virtual time: 6.5840's kvraft config.go, written fresh for raftkv.

Theory of operation
-------------------
Servers 1..n are :class:`~kvserver.testing.node.KVNode` s on one
:class:`~raftcore.testing.network.SimNetwork` and :class:`~raftcore.testing.scheduler.Scheduler`;
clients are further network endpoints (addresses from :data:`CLIENT_BASE` up) with a
:class:`~kvserver.testing.clerk.SimClerk` each. The network, the scheduler, the timing options
(:class:`~raftcore.testing.cluster.ClusterOptions`) and the Raft invariant checker are those of
:mod:`raftcore.testing`; only the node differs, because a KV node's application is a
:class:`~kvserver.replica.Replica` that persists Readys itself and serves client calls.

As in the kvraft tests the network's unreachable calls fail within 0-100 ms (``long_delays``
off), :meth:`partition` cuts server groups apart while clients named in no group keep reaching
every server (labrpc's partitions touch only server-to-server links), and a crash keeps only a
copy of the node's storage; a crashed node is disconnected and stays so after :meth:`restart`
until :meth:`connect`.

Every clerk of a cluster records into one :class:`lincheck.HistoryRecorder` whose clock is the
virtual time in nanoseconds, made strictly increasing in event order (:meth:`_history_clock`), so
a scenario ends with a history to check. Everything random comes
from ``random.Random`` instances drawn from the one run seed: a run is a pure function of the seed
and the options.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from clerk.core import ClerkCore, RetryPolicy
from kvserver.sessions import DEFAULT_MAX_IDLE_MS
from kvserver.testing.clerk import ClerkOptions, SimClerk
from kvserver.testing.node import KVNode
from kvserver.testing.process import Proc, Process, spawn
from lincheck import ClientId, HistoryRecorder
from raftcore import Config, ReadOnlyOption, Role
from raftcore.memory_storage import MemoryStorage
from raftcore.testing.cluster import ClusterOptions
from raftcore.testing.invariants import InvariantChecker, SimulationFailure
from raftcore.testing.network import SimNetwork
from raftcore.testing.scheduler import SECOND, Scheduler

__all__ = ["CLIENT_BASE", "KVCluster", "KVClusterOptions"]

T = TypeVar("T")

CLIENT_BASE = 1000
"""Network address of the first client; servers use 1..n."""


@dataclass(frozen=True)
class KVClusterOptions:
    """How a simulated KV cluster is built.

    ``raft`` carries the core's timing (10 ms ticks, 10 heartbeats a second, elections after
    300-590 ms); its ``snapshot_every`` must stay None: the Replica snapshots by
    ``max_raft_state`` (6.5840's maxraftstate; None never snapshots).
    """

    raft: ClusterOptions = field(default_factory=ClusterOptions)
    max_raft_state: int | None = None
    session_max_idle_ms: int = DEFAULT_MAX_IDLE_MS
    """Idle age after which the state machine forgets a client session (1 disables dedup)."""
    read_only: ReadOnlyOption = ReadOnlyOption.SAFE
    """How leaders confirm reads: a heartbeat round per batch, or the check-quorum lease."""
    stale_reads: bool = False
    """Test-only bug: a node that believes it leads serves Gets locally, without ReadIndex."""
    clerk: ClerkOptions = field(default_factory=ClerkOptions)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.raft.snapshot_every is not None:
            raise ValueError("KV nodes snapshot by max_raft_state; leave raft.snapshot_every None")
        if self.max_raft_state is not None and self.max_raft_state <= 0:
            raise ValueError(f"max_raft_state must be positive or None, not {self.max_raft_state}")


class KVCluster:
    """N simulated KV servers (ids 1..n) and their clients on one network."""

    def __init__(
        self,
        n: int,
        seed: int,
        options: KVClusterOptions | None = None,
        *,
        reliable: bool = True,
    ) -> None:
        if n < 1:
            raise ValueError(f"a cluster needs at least one server, got {n}")
        self.n = n
        self.seed = seed
        self.options = options or KVClusterOptions()
        master = random.Random(seed)
        self.rng = random.Random(master.getrandbits(64))
        """The test driver's own randomness (partitions, client choices)."""
        self._node_seeds = random.Random(master.getrandbits(64))
        self._client_seeds = random.Random(master.getrandbits(64))
        self.scheduler = Scheduler()
        self.network = SimNetwork(self.scheduler, random.Random(master.getrandbits(64)))
        self.network.reliable = reliable
        self.network.long_delays = False  # kvraft: unreachable calls fail within 100 ms
        self.checker = InvariantChecker(seed, lambda: self.scheduler.now)
        self._last_stamp = -1
        self.recorder = HistoryRecorder(clock=self._history_clock)
        """Every clerk's operations, stamped by :meth:`_history_clock`."""
        self.messages_sent: dict[int, int] = {}
        """Raft messages the nodes handed to the network, by ``MessageType``."""
        self.ids = tuple(range(1, n + 1))
        self.nodes: dict[int, KVNode | None] = {}
        self.saved: dict[int, MemoryStorage] = {}
        self.clerks: list[SimClerk] = []
        for i in self.ids:
            self.saved[i] = MemoryStorage(voters=self.ids)
            self.nodes[i] = None
        for i in self.ids:
            self.restart(i)
            self.connect(i)

    # -- plumbing -------------------------------------------------------------------------------

    def fail(self, message: str) -> SimulationFailure:
        """Build the failure to raise, naming the seed and the virtual time."""
        return SimulationFailure(self.seed, self.scheduler.now, message)

    def config_for(self, node_id: int) -> Config:
        """The core's configuration for ``node_id``."""
        o = self.options.raft
        return Config(
            id=node_id,
            voters=self.ids,
            election_tick=o.election_tick,
            heartbeat_tick=o.heartbeat_tick,
            pre_vote=o.pre_vote,
            check_quorum=o.check_quorum,
            max_msg_bytes=o.max_msg_bytes,
            max_inflight_msgs=o.max_inflight_msgs,
            snapshot_chunk_bytes=o.snapshot_chunk_bytes,
            read_only=self.options.read_only,
        )

    def _history_clock(self) -> int:
        """Virtual nanoseconds, strictly increasing in the order events are recorded.

        Events at one virtual instant happen one after another (the scheduler runs them in
        order), and a client calls its next operation after its previous one returned; equal
        stamps would make the checker treat them as concurrent and miss what that order forbids.
        So a stamp is ``now`` in ns, or one ns after the previous stamp if that is later.
        """
        stamp = max(self.scheduler.now * 1000, self._last_stamp + 1)
        self._last_stamp = stamp
        return stamp

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
        if not self.scheduler.run_until_true(lambda: proc.done, self.now + limit):
            raise self.fail("driver process did not finish")
        return proc.result

    # -- clients --------------------------------------------------------------------------------

    def make_clerk(
        self, name: ClientId | None = None, options: ClerkOptions | None = None
    ) -> SimClerk:
        """A new client that knows every server (in its own random order) and reaches all of
        them until a :meth:`partition` names it. ``name`` labels its history records (default:
        its number, 0, 1, ...); ``options`` default to the cluster's ``clerk`` options."""
        index = len(self.clerks)
        address = CLIENT_BASE + index
        rng = random.Random(self._client_seeds.getrandbits(64))
        servers = list(self.ids)
        rng.shuffle(servers)
        core = ClerkCore(len(servers), rng.randbytes(16), rng, self.options.retry)
        port = self.network.attach(address)
        self.network.connect(address)
        clerk = SimClerk(
            self.scheduler,
            port,
            core,
            servers,
            self.recorder,
            index if name is None else name,
            options or self.options.clerk,
        )
        self.clerks.append(clerk)
        return clerk

    # -- faults ---------------------------------------------------------------------------------

    def alive(self, i: int) -> bool:
        """Whether server ``i`` is running (not crashed)."""
        return self.nodes[i] is not None

    def connect(self, i: int) -> None:
        """Reconnect server (or client address) ``i`` to the network."""
        self.network.connect(i)

    def disconnect(self, i: int) -> None:
        """Cut server (or client address) ``i`` off in both directions."""
        self.network.disconnect(i)

    def partition(self, *groups: Sequence[int]) -> None:
        """Only members of one group talk to each other; endpoints in no group reach everyone.

        Groups may name servers and client addresses (``clerk.address``), like 6.5840's
        ``partition`` plus ``ConnectClient``.
        """
        self.network.partition(groups)

    def connect_all(self) -> None:
        """6.5840's ``ConnectAll``: mend every link and reconnect every running server."""
        self.network.heal()
        for i in self.ids:
            if self.nodes[i] is not None:
                self.connect(i)

    def crash(self, i: int) -> None:
        """Crash server ``i``: only its persisted storage survives; it is also disconnected."""
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
        """(Re)start server ``i`` from a copy of its persisted storage (crashing it first if it
        runs); it stays disconnected until :meth:`connect`."""
        if self.nodes[i] is not None:
            self.crash(i)
        storage = self.saved[i].copy()
        self.nodes[i] = KVNode(self, i, storage, random.Random(self._node_seeds.getrandbits(64)))

    def node(self, i: int) -> KVNode:
        """The running server ``i`` (raises if it is crashed)."""
        node = self.nodes[i]
        if node is None:
            raise self.fail(f"server {i} is crashed")
        return node

    # -- observations ---------------------------------------------------------------------------

    def leader(self) -> int | None:
        """The running server that believes it leads in the highest term, if any."""
        best: tuple[int, int] | None = None
        for i in self.ids:
            node = self.nodes[i]
            if node is not None and node.raw.role is Role.LEADER:
                candidate = (node.raw.term, i)
                if best is None or candidate > best:
                    best = candidate
        return None if best is None else best[1]

    def _storage(self, i: int) -> MemoryStorage:
        node = self.nodes[i]
        return node.storage if node is not None else self.saved[i]

    def raft_state_size(self, i: int) -> int:
        """Bytes of server ``i``'s persisted Raft state: hard state plus log, snapshot excluded
        (6.5840's ``RaftStateSize``)."""
        storage = self._storage(i)
        hard_state, _ = storage.initial_state()
        entries = storage.entries(storage.first_index(), storage.last_index() + 1)
        return hard_state.ByteSize() + sum(e.ByteSize() for e in entries)

    def log_size(self) -> int:
        """The largest persisted Raft state of any server (6.5840's ``LogSize``)."""
        return max(self.raft_state_size(i) for i in self.ids)

    def snapshot_size(self) -> int:
        """The largest snapshot any server holds (6.5840's ``SnapshotSize``)."""
        return max(self._storage(i).snapshot_size() for i in self.ids)
