"""A simulated KV cluster in virtual time: 6.5840's kvraft config.go, written fresh for raftkv.

Theory of operation
-------------------
Servers 1..n are :class:`~kvserver.testing.node.KVNode` s, each with a simulated disk whose
syncs take a virtual time drawn per seed (``KVClusterOptions.fsync_us``); clients are further
network endpoints (addresses from :data:`CLIENT_BASE` up) with a
:class:`~kvserver.testing.clerk.SimClerk` each.
The cluster is a :class:`raftcore.testing.runtime.SimClusterBase`: the scheduler, the network, the
timing options (:class:`~raftcore.testing.runtime.ClusterOptions`), the Raft invariant checker,
seeding, crash/restart and driver processes are the Raft cluster's; only the node differs, because
a KV node's application is a :class:`~kvserver.replica.Replica`, driven through the pipeline
the real node runs, which serves client calls.

As in the kvraft tests the network's unreachable calls fail within 0-100 ms (``long_delays``
off), :meth:`partition` cuts server groups apart while clients named in no group keep reaching
every server (labrpc's partitions touch only server-to-server links), and a crash keeps only a
copy of the node's storage; a crashed node is disconnected and stays so after :meth:`restart`
until :meth:`connect`.

Every clerk of a cluster records into one :class:`lincheck.HistoryRecorder` whose clock is the
virtual time in nanoseconds, made strictly increasing in event order (:meth:`_history_clock`), so
a scenario ends with a history to check.

Each server has a wall clock (:meth:`wall_clock_ms`), the one its leader stamps into writes for
session expiry: virtual time from :data:`WALL_CLOCK_EPOCH_MS` plus an offset a scenario may change
at any moment (:meth:`set_wall_clock_offset`: an NTP step, a resumed VM, skew). It is separate from
the monotonic time the Raft runtime ticks by. Everything random comes
from ``random.Random`` instances drawn from the one run seed: a run is a pure function of the seed
and the options.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from clerk.core import ClerkCore
from kvserver.testing.clerk import ClerkOptions, SimClerk
from kvserver.testing.node import KVNode
from kvserver.testing.options import KVClusterOptions
from lincheck import ClientId, HistoryRecorder
from raftcore import Config, Role
from raftcore.memory_storage import MemoryStorage
from raftcore.testing.runtime import SimClusterBase
from raftcore.testing.scheduler import MS

__all__ = ["CLIENT_BASE", "WALL_CLOCK_EPOCH_MS", "KVCluster", "KVClusterOptions"]

CLIENT_BASE = 1000
"""Network address of the first client; servers use 1..n."""

WALL_CLOCK_EPOCH_MS = 1_764_000_000_000
"""The servers' wall clock at virtual time 0 (ms since 1970), so clocks may jump back too."""


class KVCluster(SimClusterBase[KVNode]):
    """N simulated KV servers (ids 1..n) and their clients on one network."""

    def __init__(
        self,
        n: int,
        seed: int,
        options: KVClusterOptions | None = None,
        *,
        reliable: bool = True,
    ) -> None:
        self.options = options or KVClusterOptions()
        self._last_stamp = -1
        self._wall_offsets_ms: dict[int, int] = {}
        self.wall_clock_jumps: list[tuple[int, int, int]] = []
        """Every :meth:`set_wall_clock_offset`: (virtual time, node id, new offset in ms)."""
        self.recorder = HistoryRecorder(clock=self._history_clock)
        """Every clerk's operations, stamped by :meth:`_history_clock`."""
        self.clerks: list[SimClerk] = []
        super().__init__(n, seed, self.options.raft, reliable=reliable)
        self.network.long_delays = False  # kvraft: unreachable calls fail within 100 ms

    def draw_streams(self, master: random.Random) -> None:
        """The clients' stream and the disks' (each node's typical sync time, then every sync's
        own), drawn between the nodes' and the network's."""
        self._client_seeds = random.Random(master.getrandbits(64))
        self._disk = random.Random(master.getrandbits(64))
        low, high = self.options.fsync_us
        self.fsync_typical_us: dict[int, float] = {
            i: low * (high / low) ** self._disk.random() for i in range(1, self.n + 1)
        }
        """Each server's typical fdatasync time (virtual us), fixed for the run."""

    def fsync_delay(self, node_id: int) -> int:
        """How long the sync ``node_id`` starts now takes, in virtual microseconds."""
        typical = self.fsync_typical_us[node_id]
        return max(1, round(typical * (0.5 + self._disk.random())))

    def new_node(self, node_id: int, storage: MemoryStorage, rng: random.Random) -> KVNode:
        """A :class:`KVNode` over ``storage``."""
        return KVNode(
            self,
            node_id,
            storage,
            rng,
            options=self.options,
            wall_clock_ms=lambda: self.wall_clock_ms(node_id),
            fsync_delay=lambda: self.fsync_delay(node_id),
        )

    # -- plumbing -------------------------------------------------------------------------------

    def config_for(self, node_id: int) -> Config:
        """The core's configuration for ``node_id``, with the cluster's read-only option."""
        return dataclasses.replace(super().config_for(node_id), read_only=self.options.read_only)

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

    def set_wall_clock_offset(self, node_id: int, offset_ms: int) -> None:
        """From now on ``node_id``'s wall clock reads true time plus ``offset_ms`` (negative:
        behind); it survives crashes. Changing it is a jump of the difference."""
        self._wall_offsets_ms[node_id] = offset_ms
        self.wall_clock_jumps.append((self.scheduler.now, node_id, offset_ms))

    def wall_clock_ms(self, node_id: int) -> int:
        """``node_id``'s wall clock in ms: what its writes are stamped with."""
        return (
            WALL_CLOCK_EPOCH_MS + self.scheduler.now // MS + self._wall_offsets_ms.get(node_id, 0)
        )

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

    # -- observations ---------------------------------------------------------------------------

    def leader(self) -> int | None:
        """The running server that believes it leads in the highest term, if any."""
        best: tuple[int, int] | None = None
        for i in self.ids:
            node = self.nodes[i]
            if node is not None and node.replica.role is Role.LEADER:
                candidate = (node.replica.term, i)
                if best is None or candidate > best:
                    best = candidate
        return None if best is None else best[1]

    def snapshot_size(self) -> int:
        """The largest snapshot any server holds (6.5840's ``SnapshotSize``)."""
        return max(self.persisted(i).snapshot_size() for i in self.ids)
