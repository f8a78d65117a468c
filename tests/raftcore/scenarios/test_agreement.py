"""6.5840 Raft 3B (log agreement), on the simulated cluster in virtual time.

Our leader appends a no-op entry when elected (Raft section 8, needed for ReadIndex and for
committing earlier terms' entries), so every command index here is the course's plus the no-ops
before it: the first command of a fresh cluster lands at 2, not 1. Each check keeps the course's
meaning (consecutive indexes, nothing committed without a majority, bounded RPCs and bytes).
"""

from __future__ import annotations

from raftcore.testing.cluster import SimCluster
from raftcore.testing.scheduler import SECOND

ELECTION_TIMEOUT = SECOND  # 6.5840's RaftElectionTimeout, used for the scenario's waits


def cmd(value: int) -> bytes:
    """A command carrying ``value``, as the course's tests propose integers."""
    return b"%d" % value


def test_basic_agree(sim_seed: int) -> None:
    """6.5840 TestBasicAgree3B: three commands commit on all servers at consecutive indexes
    (2, 3, 4 here: the first leader's no-op holds 1), none before it is proposed."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    for index in range(2, 5):
        nd, _ = cfg.n_committed(index)
        assert nd == 0, "some have committed before Start()"
        xindex = cfg.one(cmd(index * 100), servers, False)
        assert xindex == index, f"got index {xindex} but expected {index}"


def test_rpc_bytes(sim_seed: int) -> None:
    """6.5840 TestRPCBytes3B: ten 5000-byte commands cost at most 3 x payload + 50 000 bytes of
    RPCs, i.e. each command goes to each peer about once."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    first = cfg.one(cmd(99), servers, False)
    bytes0 = cfg.bytes_total()
    sent = 0
    for index in range(first + 1, first + 11):
        command = bytes(cfg.rng.randrange(97, 123) for _ in range(5000))
        xindex = cfg.one(command, servers, False)
        assert xindex == index, f"got index {xindex} but expected {index}"
        sent += len(command)
    got = cfg.bytes_total() - bytes0
    expected = servers * sent
    assert got <= expected + 50_000, f"too many RPC bytes; got {got}, expected {expected}"


def test_follower_failure(sim_seed: int) -> None:
    """6.5840 TestFollowerFailure3B: agreement goes on without one follower; with both followers
    gone a proposal is accepted but commits nowhere within two election timeouts."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.one(cmd(101), servers, False)
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1 % servers + 1)
    cfg.one(cmd(102), servers - 1, False)
    cfg.sleep(ELECTION_TIMEOUT)
    last = cfg.one(cmd(103), servers - 1, False)
    leader2 = cfg.check_one_leader()
    cfg.disconnect(leader2 % servers + 1)
    cfg.disconnect((leader2 + 1) % servers + 1)
    index, _, ok = cfg.start(leader2, cmd(104))
    assert ok, "leader rejected Start()"
    assert index == last + 1, f"expected index {last + 1}, got {index}"
    cfg.sleep(2 * ELECTION_TIMEOUT)
    nd, _ = cfg.n_committed(index)
    assert nd == 0, f"{nd} committed but no majority"


def test_leader_failure(sim_seed: int) -> None:
    """6.5840 TestLeaderFailure3B: a new leader takes over from a cut-off one; when that one is
    cut off too, the lone remaining server and the two old leaders commit nothing new."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.one(cmd(101), servers, False)
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    cfg.one(cmd(102), servers - 1, False)
    cfg.sleep(ELECTION_TIMEOUT)
    cfg.one(cmd(103), servers - 1, False)
    leader2 = cfg.check_one_leader()
    cfg.disconnect(leader2)
    accepted = []
    for i in cfg.ids:
        index, _, ok = cfg.start(i, cmd(104))
        if ok:
            accepted.append(index)
    cfg.sleep(2 * ELECTION_TIMEOUT)
    for index in accepted:
        nd, data = cfg.n_committed(index)
        assert data != cmd(104), f"{nd} committed 104 at {index} but no majority"


def test_fail_agree(sim_seed: int) -> None:
    """6.5840 TestFailAgree3B: a cut-off follower misses commands, rejoins and catches up."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.one(cmd(101), servers, False)
    leader = cfg.check_one_leader()
    cfg.disconnect(leader % servers + 1)
    cfg.one(cmd(102), servers - 1, False)
    cfg.one(cmd(103), servers - 1, False)
    cfg.sleep(ELECTION_TIMEOUT)
    cfg.one(cmd(104), servers - 1, False)
    cfg.one(cmd(105), servers - 1, False)
    cfg.connect(leader % servers + 1)
    cfg.one(cmd(106), servers, True)
    cfg.sleep(ELECTION_TIMEOUT)
    cfg.one(cmd(107), servers, True)


def test_fail_no_agree(sim_seed: int) -> None:
    """6.5840 TestFailNoAgree3B: 5 servers, 3 followers cut off: the leader's entry does not
    commit; after healing the next command lands right after it or one further (the course's
    "2 or 3", shifted by the re-elected leader's no-op)."""
    servers = 5
    cfg = SimCluster(servers, sim_seed)
    first = cfg.one(cmd(10), servers, False)
    leader = cfg.check_one_leader()
    cut = [(leader + k - 1) % servers + 1 for k in (1, 2, 3)]
    for i in cut:
        cfg.disconnect(i)
    index, _, ok = cfg.start(leader, cmd(20))
    assert ok, "leader rejected Start()"
    assert index == first + 1, f"expected index {first + 1}, got {index}"
    cfg.sleep(2 * ELECTION_TIMEOUT)
    nd, _ = cfg.n_committed(index)
    assert nd == 0, f"{nd} committed but no majority"
    for i in cut:
        cfg.connect(i)
    leader2 = cfg.check_one_leader()
    index2, _, ok2 = cfg.start(leader2, cmd(30))
    assert ok2, "leader2 rejected Start()"
    assert index + 1 <= index2 <= index + 2, f"unexpected index {index2}"
    cfg.one(cmd(1000), servers, True)


def test_concurrent_starts(sim_seed: int) -> None:
    """6.5840 TestConcurrentStarts3B: five proposals made at once in one term all commit (here
    they leave in one Ready, so they travel in one batch)."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    for attempt in range(5):
        if attempt > 0:
            cfg.sleep(3 * SECOND)
        leader = cfg.check_one_leader()
        _, term, ok = cfg.start(leader, cmd(1))
        if not ok:
            continue
        indexes = []
        for i in range(5):
            index, term1, ok = cfg.start(leader, cmd(100 + i))
            if ok and term1 == term:
                indexes.append(index)
        if len(indexes) < 5 or any(cfg.term_of(j) != term for j in cfg.ids):
            continue
        values = [cfg.wait(index, servers, term) for index in indexes]
        if None in values:
            continue
        assert sorted(v for v in values if v is not None) == [cmd(100 + i) for i in range(5)]
        return
    raise AssertionError("term changed too often")


def test_rejoin(sim_seed: int) -> None:
    """6.5840 TestRejoin3B: a partitioned leader accepts entries that never commit; a new leader
    commits others; when the old leader rejoins its stale entries are overwritten."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.one(cmd(101), servers, True)
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    for value in (102, 103, 104):
        cfg.start(leader1, cmd(value))
    leader2 = cfg.check_one_leader()
    cfg.one(cmd(103), 2, True)
    cfg.disconnect(leader2)
    cfg.connect(leader1)
    cfg.one(cmd(104), 2, True)
    cfg.connect(leader2)
    cfg.one(cmd(105), servers, True)


def test_backup(sim_seed: int) -> None:
    """6.5840 TestBackup3B: 5 servers; twice, 50 entries pile up uncommitted on a minority while
    a majority commits 50 others; the leader must back up over them fast (every one() within
    10 s of virtual time)."""
    servers = 5
    cfg = SimCluster(servers, sim_seed)

    def node(k: int) -> int:
        return (k - 1) % servers + 1

    cfg.one(cmd(cfg.rng.randrange(1 << 30)), servers, True)
    leader1 = cfg.check_one_leader()
    for k in (2, 3, 4):
        cfg.disconnect(node(leader1 + k))
    for _ in range(50):
        cfg.start(leader1, cmd(cfg.rng.randrange(1 << 30)))
    cfg.sleep(ELECTION_TIMEOUT // 2)
    cfg.disconnect(leader1)
    cfg.disconnect(node(leader1 + 1))
    for k in (2, 3, 4):
        cfg.connect(node(leader1 + k))
    for _ in range(50):
        cfg.one(cmd(cfg.rng.randrange(1 << 30)), 3, True)
    leader2 = cfg.check_one_leader()
    other = node(leader1 + 2)
    if leader2 == other:
        other = node(leader2 + 1)
    cfg.disconnect(other)
    for _ in range(50):
        cfg.start(leader2, cmd(cfg.rng.randrange(1 << 30)))
    cfg.sleep(ELECTION_TIMEOUT // 2)
    for i in cfg.ids:
        cfg.disconnect(i)
    cfg.connect(leader1)
    cfg.connect(node(leader1 + 1))
    cfg.connect(other)
    for _ in range(50):
        cfg.one(cmd(cfg.rng.randrange(1 << 30)), 3, True)
    for i in cfg.ids:
        cfg.connect(i)
    cfg.one(cmd(cfg.rng.randrange(1 << 30)), servers, True)


def test_count(sim_seed: int) -> None:
    """6.5840 TestCount3B: at most 30 RPCs to elect the first leader, at most 42 to commit 11
    commands, at most 60 in one idle second (10 heartbeats a second to 2 followers)."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.check_one_leader()
    total1 = cfg.rpc_total()
    assert 1 <= total1 <= 30, f"too many or few RPCs ({total1}) to elect initial leader"
    total2 = 0
    for attempt in range(5):
        if attempt > 0:
            cfg.sleep(3 * SECOND)
        leader = cfg.check_one_leader()
        total1 = cfg.rpc_total()
        iters = 10
        starti, term, ok = cfg.start(leader, cmd(1))
        if not ok:
            continue
        commands = []
        restarted = False
        for i in range(1, iters + 2):
            x = cmd(cfg.rng.randrange(1 << 30))
            commands.append(x)
            index1, term1, ok = cfg.start(leader, x)
            if term1 != term or not ok:
                restarted = True
                break
            assert index1 == starti + i, "Start() failed"
        if restarted:
            continue
        for i in range(1, iters + 1):
            got = cfg.wait(starti + i, servers, term)
            if got is None:
                restarted = True
                break
            assert got == commands[i - 1], f"wrong value {got!r} committed for index {starti + i}"
        if restarted or any(cfg.term_of(j) != term for j in cfg.ids):
            continue
        total2 = cfg.rpc_total()
        assert total2 - total1 <= (iters + 1 + 3) * 3, (
            f"too many RPCs ({total2 - total1}) for {iters} entries"
        )
        break
    else:
        raise AssertionError("term changed too often")
    cfg.sleep(ELECTION_TIMEOUT)
    total3 = cfg.rpc_total()
    assert total3 - total2 <= 3 * 20, f"too many RPCs ({total3 - total2}) for 1 second of idleness"
