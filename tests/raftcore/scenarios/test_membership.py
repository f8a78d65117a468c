"""Single-server membership changes (thesis chapter 4) on the simulated cluster.

A node added to the cluster is started the way a new server is (``SimCluster.join``: empty
storage, no configuration) and learns everything from the leader; a removed one is stopped for
good (``retire``) or left running. The invariant checker watches every step: only voters of
the configuration a node's log holds campaign or lead, a leader holds at most one uncommitted
change, a committed entry is on a majority of a configuration that may have committed it,
snapshots carry the configuration at their index, and every node's configuration is the one
its log says. All waits are virtual time.
"""

from __future__ import annotations

from raftcore import Membership, Role
from raftcore.raftpb_pb2 import CONF_ADD_LEARNER, CONF_PROMOTE, CONF_REMOVE, MessageType
from raftcore.testing.cluster import ClusterOptions, SimCluster
from raftcore.testing.scheduler import MS, SECOND

ELECTION_TIMEOUT = SECOND  # 6.5840's RaftElectionTimeout, used for the scenario's waits


def cmd(value: int) -> bytes:
    """A command carrying ``value``."""
    return b"%d" % value


def agreed(cfg: SimCluster, ids: tuple[int, ...]) -> Membership:
    """The configuration every node of ``ids`` has in force (they must all agree)."""
    memberships = {i: cfg.membership(i) for i in ids}
    first = memberships[ids[0]]
    assert all(m == first for m in memberships.values()), memberships
    return first


def proposed(cfg: SimCluster, leader: int, kind: int, node_id: int = 0) -> tuple[int, int]:
    """Propose a change at ``leader``, which must take it: (index, node id)."""
    done = cfg.propose_conf_change(leader, kind, node_id)
    assert done is not None, f"node {leader} refused conf change {kind} of {node_id}"
    return done


def add_voter(cfg: SimCluster) -> int:
    """Add a learner (started at once), then promote it once it caught up (thesis 4.2.1)."""
    _, new = cfg.change(CONF_ADD_LEARNER)
    cfg.change(CONF_PROMOTE, new)
    return new


def applied_by(cfg: SimCluster, index: int, ids: tuple[int, ...]) -> None:
    """Wait (up to 5 s) until every node of ``ids`` applied ``index``."""
    done = cfg.scheduler.run_until_true(
        lambda: all(cfg.apps[i].applied_index >= index for i in ids), cfg.now + 5 * SECOND
    )
    assert done, f"not every one of {ids} applied {index}"


def not_committed(cfg: SimCluster, leader: int, command: bytes) -> bool:
    """Propose ``command`` at ``leader``; whether no node applied it two seconds later."""
    index, _, ok = cfg.start(leader, command)
    assert ok, f"node {leader} does not lead"
    cfg.sleep(2 * SECOND)
    return cfg.n_committed(index)[0] == 0


def test_grow_from_3_to_5_and_shrink_back_to_3(sim_seed: int) -> None:
    """Thesis 4.1 and 4.2.1: two servers added one at a time (each as a learner first, caught up
    by InstallSnapshot since the log was compacted), then three of the first voters removed
    one at a time, the leader among them. Each step commits; in between, the quorum is that
    of the configuration in force: 3 of 5, then 2 of 3 of the new voters."""
    cfg = SimCluster(3, sim_seed, ClusterOptions(snapshot_every=10))
    for k in range(12):
        cfg.one(cmd(k), 3, True)
    for _ in range(2):
        add_voter(cfg)
        cfg.one(cmd(100), len(cfg.ids), True)
    assert cfg.ids == (1, 2, 3, 4, 5)
    assert agreed(cfg, cfg.ids).voters == (1, 2, 3, 4, 5)
    assert cfg.messages_sent.get(MessageType.MSG_SNAPSHOT, 0) > 0, "no joiner needed a snapshot"
    # 3 of 5 commit; the two cut off catch up when they come back.
    cfg.disconnect(1)
    cfg.disconnect(4)
    cfg.one(cmd(101), 3, True)
    cfg.connect(1)
    cfg.connect(4)
    cfg.one(cmd(102), 5, True)
    leader = cfg.check_one_leader()
    gone = (leader, *[i for i in (1, 2, 3) if i != leader][:1])
    for i in gone:
        cfg.change(CONF_REMOVE, i)
        cfg.retire(i)
    rest = tuple(i for i in cfg.ids if i not in gone)
    assert agreed(cfg, rest).voters == rest
    cfg.one(cmd(103), 3, True)
    cfg.disconnect(rest[0])
    cfg.one(cmd(104), 2, True)  # 2 of the 3 voters left
    cfg.connect(rest[0])
    cfg.one(cmd(105), 3, True)
    # A joined node restarts from its own snapshot and log with the configuration intact.
    joined = next(i for i in (4, 5) if i in rest)
    cfg.restart(joined)
    cfg.connect(joined)
    assert cfg.node(joined).storage.snapshot_metadata().index > 0
    assert cfg.membership(joined).voters == rest
    cfg.one(cmd(106), 3, True)


def test_add_and_remove_under_partitions_and_crashes(sim_seed: int) -> None:
    """Thesis 4.1: a change takes effect on each server as soon as its log holds it, so the
    quorum changes with it. A learner added while a voter is cut off commits with the two
    left; promoted, it is one of four voters, so two of them no longer commit; removing a
    crashed voter brings the quorum back down."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.one(cmd(1), servers, True)
    leader = cfg.check_one_leader()
    cut, other = [i for i in cfg.ids if i != leader]
    cfg.disconnect(cut)
    new = add_voter(cfg)  # committed by the leader and ``other``: 2 of 3, then 3 of 4
    cfg.one(cmd(2), 3, True)
    leader = cfg.check_one_leader()
    down = next(i for i in (other, new) if i != leader)
    cfg.crash(down)  # 2 of 4 voters left connected: no quorum
    assert not_committed(cfg, leader, cmd(3))
    cfg.restart(down)
    cfg.connect(down)
    cfg.one(cmd(4), 3, True)
    cfg.connect(cut)  # learns the new configuration from the leader's log
    cfg.one(cmd(5), 4, True)
    assert agreed(cfg, cfg.ids).voters == (1, 2, 3, new)
    cfg.crash(cut)
    cfg.change(CONF_REMOVE, cut)  # 3 of the 4 voters are up: it commits
    cfg.retire(cut)
    rest = tuple(i for i in cfg.ids if i != cut)
    assert agreed(cfg, rest).voters == rest
    cfg.crash(new)
    cfg.one(cmd(6), 2, True)  # 2 of 3 again
    cfg.restart(new)
    cfg.connect(new)
    cfg.one(cmd(7), 3, True)
    assert agreed(cfg, rest).voters == rest


def test_removing_the_leader(sim_seed: int) -> None:
    """Thesis 4.2.2: a leader removes itself: it leads until the change commits, counting
    only the other voters, then steps down and tells the most caught-up voter to campaign at
    once (MSG_TIMEOUT_NOW), so a new leader is there well before an election timeout. The old
    leader, left running, knows it is removed and never campaigns again."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.one(cmd(1), servers, True)
    leader = cfg.check_one_leader()
    term = cfg.term_of(leader)
    index, _ = proposed(cfg, leader, CONF_REMOVE, leader)
    assert cfg.is_leader(leader)  # until the change commits
    rest = tuple(i for i in cfg.ids if i != leader)
    stepped_down = cfg.scheduler.run_until_true(
        lambda: not cfg.is_leader(leader), cfg.now + ELECTION_TIMEOUT
    )
    assert stepped_down
    removed_at = cfg.now
    assert cfg.apps[leader].conf_changes[index].node_id == leader  # it applied its removal
    assert cfg.messages_sent.get(MessageType.MSG_TIMEOUT_NOW, 0) > 0
    elected = cfg.scheduler.run_until_true(
        lambda: any(cfg.is_leader(i) for i in rest), cfg.now + ELECTION_TIMEOUT
    )
    assert elected and cfg.now - removed_at < 50 * MS  # not an election timeout (300 ms)
    assert agreed(cfg, (*rest, leader)).voters == rest
    cfg.one(cmd(2), 2, True)
    successor = cfg.check_one_leader()
    follower = next(i for i in rest if i != successor)
    cfg.disconnect(follower)
    assert not_committed(cfg, successor, cmd(3))  # 1 of 2 voters is no quorum
    cfg.connect(follower)
    cfg.one(cmd(4), 2, True)
    cfg.sleep(3 * ELECTION_TIMEOUT)
    assert not cfg.is_leader(leader) and cfg.node(leader).raw.role is Role.FOLLOWER
    assert cfg.term_of(rest[0]) > term


def test_a_learner_never_votes_or_counts_for_a_quorum(sim_seed: int) -> None:
    """Thesis 4.2.1: a learner receives the log but is no voter. Cut off with the leader, the
    two of them cannot commit (one voter of three); cut off with a follower, they cannot elect
    one: the learner never campaigns and nobody asks for its vote. The two other voters go
    on without it."""
    servers = 3
    cfg = SimCluster(servers, sim_seed)
    cfg.one(cmd(1), servers, True)
    _, learner = cfg.change(CONF_ADD_LEARNER)
    cfg.one(cmd(2), 4, True)
    leader = cfg.check_one_leader()
    f1, f2 = [i for i in (1, 2, 3) if i != leader]
    cfg.network.partition([[leader, learner], [f1, f2]])
    index, _, ok = cfg.start(leader, cmd(3))
    assert ok
    cfg.sleep(2 * SECOND)
    assert cfg.apps[learner].applied_index < index  # replicated, perhaps, but not committed
    assert cfg.n_committed(index)[1] != cmd(3)
    leaders = cfg.leaders_by_term()
    assert [ids for ids in leaders.values() if leader in ids or learner in ids] == []
    new = cfg.check_one_leader()
    assert new in (f1, f2)
    cfg.one(cmd(4), 2, True)
    # The learner with a follower: no leader on their side, the learner never a candidate.
    cfg.network.partition([[f1, learner], [leader, f2]])
    cfg.sleep(3 * ELECTION_TIMEOUT)
    assert not cfg.is_leader(f1) and not cfg.is_leader(learner)
    assert cfg.node(learner).raw.role is Role.FOLLOWER
    cfg.network.heal()
    cfg.one(cmd(5), 4, True)


def _removed_node_returns(seed: int, options: ClusterOptions) -> tuple[int, int, int, int]:
    """Remove a follower that is cut off (so it never hears of it), let it time out alone for
    five seconds, bring it back and run for five more: the (leader, term) before and after."""
    servers = 3
    cfg = SimCluster(servers, seed, options)
    cfg.one(cmd(1), servers, True)
    leader = cfg.check_one_leader()
    gone = next(i for i in cfg.ids if i != leader)
    cfg.disconnect(gone)
    cfg.change(CONF_REMOVE, gone)
    cfg.one(cmd(2), 2, True)
    before = cfg.check_one_leader()
    term = cfg.term_of(before)
    assert cfg.membership(gone).voters == cfg.ids  # it never learned
    cfg.sleep(5 * SECOND)
    cfg.connect(gone)
    for k in range(10):
        cfg.start(before, cmd(10 + k))
        cfg.sleep(500 * MS)
    after = cfg.check_one_leader()
    assert not cfg.is_leader(gone)
    return before, term, after, cfg.term_of(after)


def test_a_removed_server_that_comes_back_does_not_disrupt(sim_seed: int) -> None:
    """Thesis 4.2.3: a removed server that never learned of its removal times out and
    campaigns; the leader no longer sends it anything. Pre-vote (its log is behind) and
    check-quorum's leader stickiness (the voters hear from a live leader and ignore it) keep
    leader and term unchanged when it comes back. Without either, it deposes the leader."""
    before, term, after, term_after = _removed_node_returns(sim_seed, ClusterOptions())
    assert (after, term_after) == (before, term)
    bare = ClusterOptions(pre_vote=False, check_quorum=False)
    before, term, after, term_after = _removed_node_returns(sim_seed, bare)
    assert term_after > term, "the control run was not disrupted: the test lost its point"


def test_a_change_during_a_leader_change_commits_everywhere_or_nowhere(sim_seed: int) -> None:
    """Thesis 4.1 and the single-server bug of raft-dev (2015): the leader proposes a change
    and crashes within a millisecond, before or after its entry reached the others. A new
    leader must commit an entry of its own term before any change, so the proposed change
    either commits on every server (and its learner is fed) or vanishes from every log; and
    all servers end with the same configuration. Across the runs both outcomes happen."""
    outcomes = set()
    for run in range(12):
        cfg = SimCluster(3, sim_seed * 100 + run)
        cfg.one(cmd(1), 3, True)
        leader = cfg.check_one_leader()
        index, new = proposed(cfg, leader, CONF_ADD_LEARNER)
        cfg.join(new)
        cfg.sleep(cfg.rng.randrange(600))  # microseconds: messages take 50-500
        cfg.crash(leader)
        cfg.one(cmd(2), 2, True)
        cfg.restart(leader)
        cfg.connect(leader)
        applied_by(cfg, cfg.one(cmd(3), 3, True), (1, 2, 3))
        changes = [cfg.apps[i].conf_changes.get(index) for i in (1, 2, 3)]
        committed = changes[0] is not None
        assert all((c is not None) == committed for c in changes), changes
        memberships = agreed(cfg, (1, 2, 3))
        if committed:
            applied_by(cfg, cfg.one(cmd(4), 3, True), (1, 2, 3, new))  # the learner is fed
            assert memberships.learners == (new,)
        else:
            assert memberships.learners == ()
            assert all(not cfg.apps[i].conf_changes for i in (1, 2, 3))
        outcomes.add(committed)
    assert outcomes == {True, False}


def test_replacing_a_failed_server(sim_seed: int) -> None:
    """Thesis 4.2.1 and 4.3: a voter's machine dies; a new server joins as a learner and is
    promoted once caught up (promotion is refused while it is more than ``promote_lag``
    entries behind, here because it is not even started yet), then the dead one is removed.
    The cluster commits throughout, the learner not yet up costing it nothing, and the dead
    server's id is never given out again."""
    servers = 3
    cfg = SimCluster(servers, sim_seed, ClusterOptions(promote_lag=5))
    cfg.one(cmd(1), servers, True)
    leader = cfg.check_one_leader()
    dead = next(i for i in cfg.ids if i != leader)
    cfg.crash(dead)
    index, new = proposed(cfg, leader, CONF_ADD_LEARNER)
    cfg.wait(index, 2, -1)  # committed by the two live voters; the learner is not up yet
    for k in range(10):
        cfg.one(cmd(10 + k), 2, True)
    assert cfg.propose_conf_change(leader, CONF_PROMOTE, new) is None  # too far behind
    cfg.join(new)
    cfg.change(CONF_PROMOTE, new)
    cfg.change(CONF_REMOVE, dead)
    cfg.retire(dead)
    rest = tuple(i for i in cfg.ids if i != dead)
    assert agreed(cfg, rest).voters == rest
    cfg.one(cmd(2), 3, True)
    cfg.disconnect(next(i for i in rest if i != new))
    cfg.one(cmd(3), 2, True)  # the new server is one of the two
    cfg.heal_all()
    _, newer = cfg.change(CONF_ADD_LEARNER)
    assert newer == new + 1 and dead not in cfg.membership(newer).members
