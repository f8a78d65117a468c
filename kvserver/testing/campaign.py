"""The pipeline campaign: short KV runs whose crashes land while Readys are being synced.

Theory of operation
-------------------
The simulated KV cluster runs the node's own pipeline (:mod:`kvserver.testing.node`): a Ready is
written, its early messages leave and its committed entries are applied before its sync returns,
and a crash keeps only what was synced. What makes that safe lives in the core (the leader
counts only durable entries, votes and acknowledgements wait for the sync, only entries a
majority holds durably are handed out), so this campaign aims at the window between a write and
its sync: clients append with pauses of at most 10 ms (the leader is nearly always syncing),
and a fault process crashes the leader, or any node, at random instants, restarting it soon
after.

A seed decides everything: the cluster size (1, 3 or 5: a single voter is its own quorum, the
case where a leader counting its unsynced entries is visible at once), each disk's sync time
(a per-seed range, so slow leaders and slow followers both occur), whether the Replicas
snapshot, and the fault schedule. The invariant checker runs on every step (its durability
check: nothing is applied before a majority holds it durably). At the end every node is
restarted and reconnected, the clients append for one more second, and every append a client saw
acknowledged must be in its key exactly once and in order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kvserver.testing.cluster import KVCluster
from kvserver.testing.options import KVClusterOptions
from kvserver.testing.workload import CHECKER_OPTIONS, appended_value, check_appends, client_key
from raftcore.testing.process import Proc, wait_all
from raftcore.testing.scheduler import MS, SECOND

__all__ = ["PipelineResult", "run_pipeline_campaign"]

_CLIENTS = 2
_FAULTS = 5


@dataclass
class PipelineResult:
    """What one seed did."""

    seed: int
    servers: int
    fsync_us: tuple[int, int]
    crashes: int = 0
    acknowledged: int = 0
    problems: list[str] = field(default_factory=list)


def _options(rng: random.Random) -> KVClusterOptions:
    low = rng.choice((20, 200, 2000))
    high = low * rng.choice((1, 10, 50))
    return KVClusterOptions(max_raft_state=rng.choice((None, 2000)), fsync_us=(low, high))


def _client(cluster: KVCluster, cli: int, rng: random.Random, stop: list[bool]) -> Proc[int]:
    """Append to the client's own key, pausing up to 10 ms between appends, until ``stop``;
    returns how many were acknowledged."""
    clerk = cluster.make_clerk()
    key = client_key(cli)
    yield from clerk.put(key, b"")
    j = 0
    while not stop[0]:
        yield from clerk.append(key, appended_value(cli, j))
        j += 1
        yield rng.randrange(10 * MS)
    return j


def _faults(cluster: KVCluster, rng: random.Random, result: PipelineResult) -> Proc[None]:
    for _ in range(_FAULTS):
        yield rng.randrange(100, 700) * MS
        leader = cluster.leader()
        victim = leader if leader is not None and rng.random() < 0.7 else rng.choice(cluster.ids)
        cluster.crash(victim)
        result.crashes += 1
        yield rng.randrange(0, 300) * MS
        cluster.restart(victim)
        cluster.connect(victim)


def _scenario(cluster: KVCluster, rng: random.Random, result: PipelineResult) -> Proc[None]:
    stop = [False]
    clients = [
        cluster.spawn(_client(cluster, cli, random.Random(rng.getrandbits(64)), stop))
        for cli in range(_CLIENTS)
    ]
    yield from wait_all([cluster.spawn(_faults(cluster, rng, result))])
    for i in cluster.ids:
        if not cluster.alive(i):
            cluster.restart(i)
    cluster.connect_all()
    yield SECOND  # a leader again, and appends without faults
    stop[0] = True
    yield from wait_all(clients)
    checker = cluster.make_clerk("checker", CHECKER_OPTIONS)
    for cli, proc in enumerate(clients):
        result.acknowledged += proc.result
        value = yield from checker.get(client_key(cli))
        result.problems += check_appends(cli, value or b"", proc.result)


def run_pipeline_campaign(seed: int) -> PipelineResult:
    """Run one seed; raises ``InvariantViolation`` on a safety breach, ``SimulationFailure``
    if the clients do not finish within a minute of virtual time after healing."""
    rng = random.Random(seed)
    servers = rng.choice((1, 3, 3, 5))
    options = _options(rng)
    result = PipelineResult(seed, servers, options.fsync_us)
    cluster = KVCluster(servers, seed, options)
    cluster.run(_scenario(cluster, random.Random(rng.getrandbits(64)), result), 60 * SECOND)
    return result
