"""A randomized fault campaign: one seed picks a cluster, a fault schedule and a client load.

Theory of operation
-------------------
A seed decides everything (through ``random.Random`` instances derived from it): the cluster
size (3 or 5), the core's knobs (election and heartbeat ticks, pre-vote and check-quorum on or
off, small message, in-flight and snapshot-chunk limits so batching, flow control and resumable
chunks are exercised), whether and how often the application snapshots, and a schedule of
``rounds`` fault actions separated by random pauses: partitions (minority/majority, three-way,
and bridges where one node sees both sides), single disconnects, crashes and restarts, an
unreliable network, long reordering and duplicated messages switched on and off, leadership
transfers, forced elections, bursts of proposals, and membership changes (add a learner started
with empty storage, promote, remove, replace; :mod:`raftcore.testing.reconfigure`), which keep
the voters between 3 and 5. Two client processes propose throughout and remember every value
they saw commit; they also ask the leader for ReadIndex read points, which the invariant checker
verifies. The faults pick among the nodes not retired: the cluster's node set changes.

The cluster's invariant checker runs on every step. At the end everything is healed; liveness
then requires a leader within 6.5840's 5 s and one more command committed on every member of
its configuration within 10 s, with every member then holding that configuration, and
durability requires every value a client saw commit to be in the final log at its index.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from raftcore.testing.cluster import ClusterOptions, SimCluster
from raftcore.testing.process import Proc
from raftcore.testing.reconfigure import Reconfigurer
from raftcore.testing.scheduler import MS, SECOND

__all__ = ["CampaignResult", "run_campaign"]


@dataclass
class CampaignResult:
    """What one seed did, for reporting and for tests that check the campaign's coverage."""

    seed: int
    servers: int
    options: ClusterOptions
    virtual_us: int = 0
    final_index: int = 0
    acknowledged: int = 0
    reads_answered: int = 0
    final_voters: tuple[int, ...] = ()
    conf_changes: int = 0
    """Membership changes in the final log."""
    actions: dict[str, int] = field(default_factory=dict)
    messages_sent: dict[int, int] = field(default_factory=dict)


def _options(rng: random.Random) -> ClusterOptions:
    election_tick, heartbeat_tick = rng.choice([(30, 10), (30, 10), (10, 2), (20, 5)])
    return ClusterOptions(
        election_tick=election_tick,
        heartbeat_tick=heartbeat_tick,
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.8,
        max_msg_bytes=rng.choice([64, 1024, 1 << 20]),
        max_inflight_msgs=rng.choice([1, 4, 256]),
        snapshot_chunk_bytes=rng.choice([16, 128, 1 << 20]),
        snapshot_every=rng.choice([None, 5, 10, 25]),
        promote_lag=rng.choice([5, 50, 1000]),
    )


class _Campaign:
    def __init__(self, seed: int, rounds: int) -> None:
        setup = random.Random(seed)
        self.servers = setup.choice([3, 5])
        options = _options(setup)
        self.cluster = SimCluster(self.servers, seed, options, reliable=setup.random() < 0.6)
        self.rng = self.cluster.rng
        self.rounds = rounds
        self.result = CampaignResult(seed, self.servers, options)
        self.stop = False
        self.seen: dict[int, bytes] = {}  # index -> value a client saw committed there
        self.next_value = 0
        self.reconfigurer = Reconfigurer(
            self.cluster, self.rng, self.result.actions, lambda: self.stop
        )

    def value(self) -> bytes:
        self.next_value += 1
        return b"v%d" % self.next_value

    # -- load -----------------------------------------------------------------------------------

    def propose_anywhere(self, value: bytes) -> int:
        cluster = self.cluster
        order = list(cluster.active)
        self.rng.shuffle(order)
        for i in order:
            index, _, ok = cluster.start(i, value)
            if ok:
                return index
        return -1

    def client(self) -> Proc[None]:
        cluster = self.cluster
        while not self.stop:
            if self.rng.random() < 0.3:
                for i in cluster.ids:
                    if cluster.read_index(i) is not None:
                        break
                yield self.rng.randrange(10, 60) * MS
                continue
            value = self.value()
            index = self.propose_anywhere(value)
            if index == -1:
                yield self.rng.randrange(20, 120) * MS
                continue
            for pause in (5, 10, 20, 50, 100):
                nd, data = cluster.n_committed(index)
                if nd > 0:
                    if data == value:
                        self.seen[index] = value
                    break
                yield pause * MS
            yield self.rng.randrange(10, 60) * MS
        return None

    # -- faults ---------------------------------------------------------------------------------

    def leader(self) -> int | None:
        leaders = [i for i in self.cluster.ids if self.cluster.is_leader(i)]
        if not leaders:
            return None
        return max(leaders, key=self.cluster.term_of)

    def pick(self) -> int:
        return self.rng.choice(self.cluster.active)

    def split(self, parts: int) -> list[list[int]]:
        ids = list(self.cluster.active)
        self.rng.shuffle(ids)
        cuts = sorted(self.rng.sample(range(1, len(ids)), parts - 1))
        bounds = [0, *cuts, len(ids)]
        return [ids[a:b] for a, b in itertools.pairwise(bounds)]

    def act_partition(self) -> None:
        self.cluster.network.partition(self.split(2))

    def act_partition3(self) -> None:
        self.cluster.network.partition(self.split(3))

    def act_bridge(self) -> None:
        ids = list(self.cluster.active)
        bridge = self.rng.choice(ids)
        rest = [i for i in ids if i != bridge]
        self.rng.shuffle(rest)
        k = self.rng.randrange(1, len(rest))
        self.cluster.network.partition([rest[:k], rest[k:]])

    def act_heal(self) -> None:
        self.cluster.network.heal()
        for i in self.cluster.active:
            if self.cluster.alive(i):
                self.cluster.connect(i)

    def act_isolate_leader(self) -> None:
        leader = self.leader()
        if leader is not None:
            self.cluster.disconnect(leader)

    def act_disconnect(self) -> None:
        self.cluster.disconnect(self.pick())

    def act_connect(self) -> None:
        i = self.pick()
        if self.cluster.alive(i):
            self.cluster.connect(i)

    def act_crash(self) -> None:
        self.cluster.crash(self.pick())

    def act_restart(self) -> None:
        down = [i for i in self.cluster.active if not self.cluster.alive(i)]
        if down:
            i = self.rng.choice(down)
            self.cluster.restart(i)
            self.cluster.connect(i)

    def act_unreliable(self) -> None:
        self.cluster.network.reliable = not self.cluster.network.reliable

    def act_reorder(self) -> None:
        self.cluster.network.long_reordering = not self.cluster.network.long_reordering

    def act_duplicate(self) -> None:
        network = self.cluster.network
        network.duplicate_fraction = 0.0 if network.duplicate_fraction else 0.05

    def act_transfer(self) -> None:
        leader = self.leader()
        if leader is not None:
            voters = [i for i in self.cluster.membership(leader).voters if i != leader]
            if voters:
                self.cluster.transfer_leadership(leader, self.rng.choice(voters))

    def act_elect(self) -> None:
        node = self.cluster.nodes[self.pick()]
        if node is not None:
            node.raw.campaign()
            node.schedule_drain()

    def act_burst(self) -> None:
        for _ in range(self.rng.randrange(1, 30)):
            self.propose_anywhere(self.value())

    def actions(self) -> list[tuple[str, Callable[[], None], int]]:
        return [
            ("partition", self.act_partition, 3),
            ("partition3", self.act_partition3, 1),
            ("bridge", self.act_bridge, 2),
            ("heal", self.act_heal, 4),
            ("isolate_leader", self.act_isolate_leader, 2),
            ("disconnect", self.act_disconnect, 1),
            ("connect", self.act_connect, 2),
            ("crash", self.act_crash, 2),
            ("restart", self.act_restart, 3),
            ("unreliable", self.act_unreliable, 1),
            ("reorder", self.act_reorder, 1),
            ("duplicate", self.act_duplicate, 1),
            ("transfer", self.act_transfer, 2),
            ("elect", self.act_elect, 1),
            ("burst", self.act_burst, 3),
            ("membership", self.reconfigurer.start, 4),
        ]

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> CampaignResult:
        cluster = self.cluster
        clients = [cluster.spawn(self.client()) for _ in range(2)]
        actions = self.actions()
        names = [a[0] for a in actions]
        weights = [a[2] for a in actions]
        for _ in range(self.rounds):
            k = self.rng.choices(range(len(actions)), weights)[0]
            actions[k][1]()
            counts = self.result.actions
            counts[names[k]] = counts.get(names[k], 0) + 1
            cluster.sleep(self.rng.randrange(20, 700) * MS)
        self.stop = True
        cluster.heal_all()
        plan = self.reconfigurer.proc
        cluster.wait_done(clients if plan is None else [*clients, plan])
        final = self.converge()
        for index, value in self.seen.items():
            _, data = cluster.n_committed(index)
            if data != value:
                raise cluster.fail(f"acknowledged {value!r} at {index} was lost (now {data!r})")
        self.result.virtual_us = cluster.now
        self.result.final_index = final
        self.result.acknowledged = len(self.seen)
        self.result.messages_sent = dict(cluster.messages_sent)
        self.result.reads_answered = cluster.reads_answered
        return self.result

    def converge(self) -> int:
        """After healing: a leader, one more command applied by every member of the
        configuration it commits under, each of them holding that configuration; its index."""
        cluster = self.cluster
        cluster.check_one_leader()
        final = cluster.one(b"final", 1, True)
        holder = next(i for i in cluster.ids if cluster.alive(i) and cluster.apps[i].get(final))
        config = cluster.node(holder).raw.membership_at(final)
        members = config.members
        applied = cluster.scheduler.run_until_true(
            lambda: all(cluster.alive(i) and cluster.apps[i].get(final) for i in members),
            cluster.now + 10 * SECOND,
        )
        if not applied:
            raise cluster.fail(f"not every member of {config} applied the final command")
        for i in members:
            if cluster.membership(i) != config:
                raise cluster.fail(f"node {i} ends with {cluster.membership(i)}, not {config}")
        self.result.final_voters = config.voters
        self.result.conf_changes = len(cluster.apps[holder].conf_changes)
        return final


def run_campaign(seed: int, rounds: int = 16) -> CampaignResult:
    """Run the campaign for ``seed`` (see the module docstring); raises ``SimulationFailure``
    (naming the seed) on any safety, liveness or durability failure."""
    return _Campaign(seed, rounds).run()
