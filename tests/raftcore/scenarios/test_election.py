"""6.5840 Raft 3A (leader election), on the simulated cluster in virtual time.

Our leader appends a no-op when elected (Raft section 8), so log indexes in later parts sit one
above the course's; elections here are bounded exactly as there (a leader within ~5 s).
"""

from __future__ import annotations

from raftcore.testing.cluster import SimCluster
from raftcore.testing.scheduler import MS, SECOND

ELECTION_TIMEOUT = SECOND  # 6.5840's RaftElectionTimeout, used for the scenario's waits


def test_initial_election(sim_seed: int) -> None:
    """6.5840 TestInitialElection3A: one leader; every server agrees on a term >= 1; with no
    failure the term stays put over two election timeouts, and a leader is still there."""
    cfg = SimCluster(3, sim_seed)
    cfg.check_one_leader()
    cfg.sleep(50 * MS)
    term1 = cfg.check_terms()
    assert term1 >= 1, f"term is {term1}, but should be at least 1"
    cfg.sleep(2 * ELECTION_TIMEOUT)
    term2 = cfg.check_terms()
    assert term1 == term2, f"term changed from {term1} to {term2} with no failures"
    cfg.check_one_leader()


def test_re_election(sim_seed: int) -> None:
    """6.5840 TestReElection3A: a cut-off leader is replaced; its return does not disturb the
    new one; with two of three cut off there is no leader; healing brings one back."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    cfg.check_one_leader()
    cfg.connect(leader1)
    leader2 = cfg.check_one_leader()
    other = leader2 % servers + 1
    cfg.disconnect(leader2)
    cfg.disconnect(other)
    cfg.sleep(2 * ELECTION_TIMEOUT)
    cfg.check_no_leader()
    cfg.connect(other)
    cfg.check_one_leader()
    cfg.connect(leader2)
    cfg.check_one_leader()


def test_many_elections(sim_seed: int) -> None:
    """6.5840 TestManyElections3A: 7 servers, 10 rounds of cutting off 3 random servers: the
    remaining majority always has exactly one leader."""
    servers = 7
    cfg = SimCluster(servers, sim_seed)
    cfg.check_one_leader()
    for _ in range(10):
        cut = [cfg.rng.randrange(servers) + 1 for _ in range(3)]
        for i in cut:
            cfg.disconnect(i)
        cfg.check_one_leader()
        for i in cut:
            cfg.connect(i)
    cfg.check_one_leader()
