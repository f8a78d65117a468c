"""6.5840 Raft 3C (persistence, figure 8, unreliable networks, churn) on the simulated cluster.

A crash keeps only what the node persisted (a copy of its MemoryStorage); the crashed node is
disconnected and a restarted one stays so until ``connect``, as in the course's ``crash1`` and
``start1``. All waits are virtual time.
"""

from __future__ import annotations

from raftcore.testing.cluster import SimCluster
from raftcore.testing.process import Proc
from raftcore.testing.scheduler import MS, SECOND

ELECTION_TIMEOUT = SECOND  # 6.5840's RaftElectionTimeout, used for the scenario's waits


def cmd(value: int) -> bytes:
    """A command carrying ``value``, as the course's tests propose integers."""
    return b"%d" % value


def test_persist1(sim_seed: int) -> None:
    """6.5840 TestPersist13C: crash and restart all servers, then the leader, then a follower;
    committed commands survive and agreement continues each time."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.one(cmd(11), servers, True)
    for i in cfg.ids:
        cfg.restart(i)
    for i in cfg.ids:
        cfg.disconnect(i)
        cfg.connect(i)
    cfg.one(cmd(12), servers, True)
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    cfg.restart(leader1)
    cfg.connect(leader1)
    cfg.one(cmd(13), servers, True)
    leader2 = cfg.check_one_leader()
    cfg.disconnect(leader2)
    index14 = cfg.one(cmd(14), servers - 1, True)
    cfg.restart(leader2)
    cfg.connect(leader2)
    cfg.wait(index14, servers, -1)  # leader2 rejoined before we kill i3
    i3 = cfg.check_one_leader() % servers + 1
    cfg.disconnect(i3)
    cfg.one(cmd(15), servers - 1, True)
    cfg.restart(i3)
    cfg.connect(i3)
    cfg.one(cmd(16), servers, True)


def test_persist2(sim_seed: int) -> None:
    """6.5840 TestPersist23C: 5 servers, 5 rounds of partitions and partial crashes; a majority
    built from restarted servers must still hold every committed entry."""
    servers = 5
    cfg = SimCluster(servers, sim_seed)

    def node(k: int) -> int:
        return (k - 1) % servers + 1

    index = 1
    for _ in range(5):
        cfg.one(cmd(10 + index), servers, True)
        index += 1
        leader1 = cfg.check_one_leader()
        cfg.disconnect(node(leader1 + 1))
        cfg.disconnect(node(leader1 + 2))
        cfg.one(cmd(10 + index), servers - 2, True)
        index += 1
        cfg.disconnect(leader1)
        cfg.disconnect(node(leader1 + 3))
        cfg.disconnect(node(leader1 + 4))
        cfg.restart(node(leader1 + 1))
        cfg.restart(node(leader1 + 2))
        cfg.connect(node(leader1 + 1))
        cfg.connect(node(leader1 + 2))
        cfg.sleep(ELECTION_TIMEOUT)
        cfg.restart(node(leader1 + 3))
        cfg.connect(node(leader1 + 3))
        cfg.one(cmd(10 + index), servers - 2, True)
        index += 1
        cfg.connect(node(leader1 + 4))
        cfg.connect(leader1)
    cfg.one(cmd(1000), servers, True)


def test_persist3(sim_seed: int) -> None:
    """6.5840 TestPersist33C: a partitioned leader and one follower crash; the follower that was
    cut off and the restarted leader form a majority and go on; then everyone agrees."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)

    def node(k: int) -> int:
        return (k - 1) % servers + 1

    cfg.one(cmd(101), servers, True)
    leader = cfg.check_one_leader()
    cfg.disconnect(node(leader + 2))
    cfg.one(cmd(102), 2, True)
    cfg.crash(leader)
    cfg.crash(node(leader + 1))
    cfg.connect(node(leader + 2))
    cfg.restart(leader)
    cfg.connect(leader)
    cfg.one(cmd(103), 2, True)
    cfg.restart(node(leader + 1))
    cfg.connect(node(leader + 1))
    cfg.one(cmd(104), servers, True)


def test_figure8(sim_seed: int) -> None:
    """6.5840 TestFigure83C: 5 servers, 1000 rounds: propose on every live server, wait 0-13 ms
    (10 %: up to 500 ms), crash the leader, restart one if fewer than 3 are up (Figure 8 of the
    Raft paper: a leader must not count replicas of old-term entries to commit)."""
    servers = 5
    cfg = SimCluster(servers, sim_seed)
    rng = cfg.rng
    cfg.one(cmd(rng.randrange(1 << 30)), 1, True)
    nup = servers
    for _ in range(1000):
        leader = -1
        for i in cfg.ids:
            if cfg.alive(i):
                _, _, ok = cfg.start(i, cmd(rng.randrange(1 << 30)))
                if ok:
                    leader = i
        if rng.randrange(1000) < 100:
            cfg.sleep(rng.randrange(ELECTION_TIMEOUT // 2))
        else:
            cfg.sleep(rng.randrange(13) * MS)
        if leader != -1:
            cfg.crash(leader)
            nup -= 1
        if nup < 3:
            s = rng.randrange(servers) + 1
            if not cfg.alive(s):
                cfg.restart(s)
                cfg.connect(s)
                nup += 1
    for i in cfg.ids:
        if not cfg.alive(i):
            cfg.restart(i)
            cfg.connect(i)
    cfg.one(cmd(rng.randrange(1 << 30)), servers, True)


def test_unreliable_agree(sim_seed: int) -> None:
    """6.5840 TestUnreliableAgree3C: 5 servers on an unreliable network (delays, 10 % request and
    10 % reply loss), 50 rounds of 4 concurrent agreements plus one more; then all agree."""
    servers = 5
    cfg = SimCluster(servers, sim_seed, reliable=False)
    procs = []
    for iteration in range(1, 50):
        for j in range(4):
            procs.append(cfg.spawn(cfg.one_proc(cmd(100 * iteration + j), 1, True)))
        cfg.one(cmd(iteration), 1, True)
    cfg.network.reliable = True
    cfg.wait_done(procs)
    cfg.one(cmd(100), servers, True)


def test_figure8_unreliable(sim_seed: int) -> None:
    """6.5840 TestFigure8Unreliable3C: 5 servers, unreliable network, 1000 rounds of proposals
    with the leader cut off half the time, long reordering of replies from round 200; after
    healing everything commits."""
    servers = 5
    cfg = SimCluster(servers, sim_seed, reliable=False)
    rng = cfg.rng
    cfg.one(cmd(rng.randrange(10000)), 1, True)
    nup = servers
    for iteration in range(1000):
        if iteration == 200:
            cfg.network.long_reordering = True
        leader = -1
        for i in cfg.ids:
            _, _, ok = cfg.start(i, cmd(rng.randrange(10000)))
            if ok and cfg.connected(i):
                leader = i
        if rng.randrange(1000) < 100:
            cfg.sleep(rng.randrange(ELECTION_TIMEOUT // 2))
        else:
            cfg.sleep(rng.randrange(13) * MS)
        if leader != -1 and rng.randrange(1000) < ELECTION_TIMEOUT // MS // 2:
            cfg.disconnect(leader)
            nup -= 1
        if nup < 3:
            s = rng.randrange(servers) + 1
            if not cfg.connected(s):
                cfg.connect(s)
                nup += 1
    for i in cfg.ids:
        cfg.connect(i)
    cfg.one(cmd(rng.randrange(10000)), servers, True)


def churn(sim_seed: int, reliable: bool) -> None:
    """6.5840's internalChurn: 3 clients propose nonstop through 20 rounds of random disconnects,
    restarts and crashes; every value a client saw committed is in the final log."""
    servers = 5
    cfg = SimCluster(servers, sim_seed, reliable=reliable)
    rng = cfg.rng
    stop = False
    seen: list[bytes] = []  # values some client saw committed

    def client(me: int) -> Proc[None]:
        while not stop:
            x = cmd(rng.randrange(1 << 30))
            index = -1
            for i in cfg.ids:
                index1, _, ok = cfg.start(i, x)
                if ok:
                    index = index1
                    break
            if index != -1:
                for pause in (10, 20, 50, 100, 200):
                    nd, data = cfg.n_committed(index)
                    if nd > 0:
                        if data == x:
                            seen.append(x)
                        break
                    yield pause * MS
            else:
                yield (79 + me * 17) * MS
        return None

    clients = [cfg.spawn(client(me)) for me in range(3)]
    for _ in range(20):
        if rng.randrange(1000) < 200:
            cfg.disconnect(rng.randrange(servers) + 1)
        if rng.randrange(1000) < 500:
            i = rng.randrange(servers) + 1
            if not cfg.alive(i):
                cfg.restart(i)
            cfg.connect(i)
        if rng.randrange(1000) < 200:
            i = rng.randrange(servers) + 1
            if cfg.alive(i):
                cfg.crash(i)
        cfg.sleep(ELECTION_TIMEOUT * 7 // 10)
    cfg.sleep(ELECTION_TIMEOUT)
    cfg.network.reliable = True
    for i in cfg.ids:
        if not cfg.alive(i):
            cfg.restart(i)
        cfg.connect(i)
    stop = True
    cfg.wait_done(clients)
    cfg.sleep(ELECTION_TIMEOUT)
    last_index = cfg.one(cmd(rng.randrange(1 << 30)), servers, True)
    really = {cfg.wait(index, servers, -1) for index in range(1, last_index + 1)}
    for value in seen:
        assert value in really, f"didn't find a value {value!r} a client saw committed"


def test_reliable_churn(sim_seed: int) -> None:
    """6.5840 TestReliableChurn3C: churn on a reliable network."""
    churn(sim_seed, reliable=True)


def test_unreliable_churn(sim_seed: int) -> None:
    """6.5840 TestUnreliableChurn3C: churn on an unreliable network."""
    churn(sim_seed, reliable=False)
