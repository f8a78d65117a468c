"""Single-server membership changes (thesis 4.1-4.2.3): learners, promotion, removal (of the
leader too), the one-change-at-a-time rules, and configurations carried by the log, snapshots
and restarts."""

from __future__ import annotations

import random

import pytest
from raftcore_pump import Node, Pump, drain, msg, single

from raftcore import ConfChangeError, Config, Membership, ProposalDroppedError, RawNode, Role
from raftcore.membership import MembershipLog, conf_change_of
from raftcore.memory_storage import MemoryStorage
from raftcore.persister import ReadyPersister
from raftcore.raftpb_pb2 import (
    CONF_ADD_LEARNER,
    CONF_PROMOTE,
    CONF_REMOVE,
    ENTRY_CONF_CHANGE,
    MSG_APPEND,
    MSG_VOTE,
    ConfChange,
    Entry,
)


def _cluster(n: int = 3, seed: int = 7, **config: object) -> tuple[Pump, int]:
    pump = Pump(n, seed=seed, **config)
    pump.tick(40)
    leader = pump.leader()
    assert leader
    return pump, leader


def _join(pump: Pump, i: int) -> Node:
    """Start node ``i`` the way ``raftkv server --join`` does: empty storage, no configuration."""
    storage = MemoryStorage()
    raw = RawNode(Config(id=i, voters=()), storage, random.Random(i))
    node = Node(raw, storage, ReadyPersister(storage))
    pump.nodes[i] = node
    pump.ids = (*pump.ids, i)
    return node


def _propose(pump: Pump, leader: int, n: int) -> None:
    for k in range(n):
        pump.nodes[leader].raw.propose(b"v%d" % k)
    pump.deliver()


def _add(pump: Pump, leader: int, address: str) -> int:
    index, new_id = pump.nodes[leader].raw.propose_conf_change(CONF_ADD_LEARNER, address=address)
    _join(pump, new_id)
    pump.tick(3)
    assert pump.nodes[leader].raw.commit_index >= index
    return new_id


def test_4_2_1_a_learner_gets_the_log_and_learns_every_member_from_the_entry_that_added_it() -> (
    None
):
    pump, leader = _cluster()
    _propose(pump, leader, 5)
    new = _add(pump, leader, "10.0.0.4:9000")
    assert new == 4  # the next id never used
    learner = pump.nodes[new]
    pump.tick(3)
    assert learner.state == pump.nodes[leader].state
    m = learner.raw.membership
    assert m.voters == (1, 2, 3) and m.learners == (4,)
    assert m.addresses[4] == "10.0.0.4:9000"
    assert pump.nodes[leader].raw.membership == m


def test_4_2_1_a_learner_never_counts_for_a_quorum_and_never_campaigns() -> None:
    pump, leader = _cluster()
    new = _add(pump, leader, "h:4")
    others = [i for i in (1, 2, 3) if i != leader]
    pump.isolate(*others)  # the leader and the learner stay together
    committed = pump.nodes[leader].raw.commit_index
    _propose(pump, leader, 3)
    assert pump.nodes[new].raw.status().last_index == pump.nodes[leader].raw.status().last_index
    assert pump.nodes[leader].raw.commit_index == committed  # one voter of three + a learner
    pump.isolate(new)
    pump.tick(200)
    assert pump.nodes[new].raw.role is Role.FOLLOWER
    assert not any(m.sender == new and m.type == MSG_VOTE for m in pump.delivered)


def test_4_2_1_promotion_is_refused_until_the_learner_caught_up() -> None:
    pump, leader = _cluster(promote_lag=10)
    new = _add(pump, leader, "h:4")
    pump.isolate(new)
    _propose(pump, leader, 30)
    raw = pump.nodes[leader].raw
    with pytest.raises(ConfChangeError) as refused:
        raw.propose_conf_change(CONF_PROMOTE, new)
    assert refused.value.retryable and "has not caught up" in str(refused.value)
    assert raw.membership.learners == (new,)  # nothing half-applied
    pump.heal()
    pump.tick(5)
    index, _ = raw.propose_conf_change(CONF_PROMOTE, new)
    pump.tick(3)
    assert raw.commit_index >= index
    assert raw.membership.voters == (1, 2, 3, 4)
    assert not raw.membership.learners


def test_4_1_one_change_at_a_time() -> None:
    pump, leader = _cluster()
    raw = pump.nodes[leader].raw
    pump.isolate(*[i for i in (1, 2, 3) if i != leader])  # the first change cannot commit
    raw.propose_conf_change(CONF_ADD_LEARNER, address="h:4")
    pump.deliver()
    with pytest.raises(ConfChangeError) as refused:
        raw.propose_conf_change(CONF_ADD_LEARNER, address="h:5")
    assert "pending" in str(refused.value) and refused.value.retryable


def test_4_1_a_new_leader_changes_nothing_before_it_committed_an_entry_of_its_term() -> None:
    """The bug raft-dev found in single-server changes (2015): a leader that has not committed
    in its term may not know of an earlier leader's uncommitted change; it must wait."""
    pump = Pump(3, seed=3)
    pump.drop = lambda m: m.sender == 1 and m.type == MSG_APPEND  # its no-op cannot commit
    pump.elect(1)
    raw = pump.nodes[1].raw
    with pytest.raises(ProposalDroppedError):
        raw.propose_conf_change(CONF_ADD_LEARNER, address="h:4")
    pump.heal()
    pump.tick(2)
    raw.propose_conf_change(CONF_ADD_LEARNER, address="h:4")  # now it may


def _conf_entry(index: int, term: int, result: Membership) -> Entry:
    change = ConfChange(type=CONF_ADD_LEARNER, node_id=4, address="h:4")
    change.result.CopyFrom(result.conf_state())
    return Entry(term=term, index=index, type=ENTRY_CONF_CHANGE, data=change.SerializeToString())


def test_4_1_a_configuration_is_in_force_once_appended_and_gone_when_its_entry_is_cut() -> None:
    raw, storage = single(i=2, check_quorum=False)
    grown = Membership((1, 2, 3), (4,), {4: "h:4"}, 5)
    conf = _conf_entry(2, 1, grown)
    raw.step(
        msg(
            MSG_APPEND,
            1,
            2,
            1,
            index=0,
            log_term=0,
            commit=0,
            entries=[Entry(term=1, index=1), conf],
            carries_conf=True,
        )
    )
    drain(raw, storage)
    assert raw.membership.learners == (4,) and raw.commit_index == 0  # appended, uncommitted
    # A leader of term 2 holds another entry at index 2: the follower's is cut, and with it
    # the configuration it brought.
    raw.step(
        msg(MSG_APPEND, 3, 2, 2, index=1, log_term=1, commit=0, entries=[Entry(term=2, index=2)])
    )
    drain(raw, storage)
    assert not raw.membership.learners and raw.membership.voters == (1, 2, 3)
    # Restarted from what it persisted, it agrees.
    again = RawNode(Config(id=2, voters=(1, 2, 3)), storage, random.Random(1))
    assert again.membership.learners == ()


def test_4_1_a_follower_that_loses_its_conf_entry_to_a_conflict_reverts() -> None:
    """Direct form of the above: the entry is cut by a leader whose log conflicts."""
    log = MembershipLog(Membership((1, 2, 3), next_id=4), 0)
    entry = _conf_entry(5, 2, Membership((1, 2, 3), (4,), {4: "h:4"}, 5))
    assert log.append([Entry(term=2, index=4), entry])
    assert log.latest.learners == (4,) and log.latest_index == 5
    assert log.at(4).learners == () and log.at(5).learners == (4,)
    # The log now holds term 3 at index 5: the record goes.
    assert log.truncate(lambda i, t: t == 3 if i == 5 else True, 4)
    assert not log.latest.learners and log.latest_index == 0
    # A resent entry that still matches is kept, not duplicated, and later records stay.
    later = _conf_entry(9, 2, Membership((1, 2, 3), (4, 5), {4: "h:4", 5: "h:5"}, 6))
    assert log.append([entry, later])
    assert not log.truncate(lambda i, t: True, 4)
    assert not log.append([Entry(term=2, index=4), entry])  # a retransmit of 4..5
    assert log.latest_index == 9 and log.latest.learners == (4, 5)


def test_4_1_a_resent_conf_entry_does_not_undo_the_later_one() -> None:
    """A follower holding two conf entries gets a duplicate of the append that brought the
    first (a new leader that does not know the commit index yet may send it: the network
    duplicates messages). Its log keeps both entries, so the second stays in force."""
    raw, storage = single(i=2, check_quorum=False)
    learner = Membership((1, 2, 3), (4,), {4: "h:4"}, 5)
    promoted = Membership((1, 2, 3, 4), (), {4: "h:4"}, 5)
    first = [Entry(term=1, index=1), _conf_entry(2, 1, learner)]
    rest = [Entry(term=1, index=3), _conf_entry(4, 1, promoted), Entry(term=2, index=5)]

    def append(index: int, entries: list[Entry]) -> None:
        log_term = 1 if index else 0
        m = msg(MSG_APPEND, 3, 2, 2, index=index, log_term=log_term, commit=0, entries=entries)
        m.carries_conf = True
        raw.step(m)
        drain(raw, storage)

    append(0, first)
    append(2, rest)
    assert raw.membership == promoted
    append(0, first)  # the duplicate: nothing in the log changes
    assert raw.status().last_index == 5
    assert raw.membership == promoted
    assert raw.membership_at(3) == learner


def test_4_2_2_a_removed_leader_leads_until_the_change_commits_without_counting_itself() -> None:
    pump, leader = _cluster()
    raw = pump.nodes[leader].raw
    index, _ = raw.propose_conf_change(CONF_REMOVE, leader)
    assert raw.status().role is Role.LEADER  # still, until the change commits
    assert raw.membership.voters == tuple(i for i in (1, 2, 3) if i != leader)
    pump.deliver()
    assert raw.status().role is Role.FOLLOWER  # stepped down once it committed ...
    pump.tick(30, nodes=tuple(i for i in (1, 2, 3) if i != leader))
    new_leader = pump.leader()
    assert new_leader not in (0, leader)  # ... and another voter leads
    rest = pump.nodes[new_leader].raw
    assert rest.commit_index >= index
    _propose(pump, new_leader, 3)
    assert rest.commit_index == rest.status().last_index  # 2 voters commit alone


def test_4_2_2_a_removed_leader_does_not_count_itself_for_the_commit() -> None:
    pump, leader = _cluster()
    raw = pump.nodes[leader].raw
    others = [i for i in (1, 2, 3) if i != leader]
    pump.isolate(others[0])
    pump.drop = lambda m: m.to == others[0] or m.sender == others[0] or m.to == others[1]
    index, _ = raw.propose_conf_change(CONF_REMOVE, leader)
    pump.deliver()
    # The leader holds it durably, the two voters that remain do not: not committed.
    assert raw.commit_index < index and raw.role is Role.LEADER


def test_4_2_3_a_removed_node_that_comes_back_does_not_disrupt_the_cluster() -> None:
    pump, leader = _cluster()
    gone = next(i for i in (1, 2, 3) if i != leader)
    pump.isolate(gone)  # it never hears of its removal
    raw = pump.nodes[leader].raw
    raw.propose_conf_change(CONF_REMOVE, gone)
    pump.tick(3)
    assert raw.membership.voters == tuple(i for i in (1, 2, 3) if i != gone)
    _propose(pump, leader, 3)
    term = raw.term
    pump.tick(100, nodes=(gone,))  # it times out again and again, alone
    pump.heal()
    pump.tick(100)
    assert pump.leader() == leader and raw.term == term  # pre-vote and stickiness hold it off
    assert raw.commit_index == raw.status().last_index


def test_refused_changes_leave_the_configuration_as_it_was() -> None:
    pump, leader = _cluster()
    raw = pump.nodes[leader].raw
    new = _add(pump, leader, "h:4")
    before = raw.membership
    cases = [
        (CONF_ADD_LEARNER, 0, "h:4", "already the address of"),
        (CONF_ADD_LEARNER, 0, "", "needs an address"),
        (CONF_PROMOTE, leader, "", "already a voter"),
        (CONF_PROMOTE, 9, "", "not a learner"),
        (CONF_REMOVE, 9, "", "not a member"),
    ]
    for kind, node_id, address, why in cases:
        with pytest.raises(ConfChangeError) as refused:
            raw.propose_conf_change(kind, node_id, address)
        assert why in str(refused.value)
        assert not refused.value.retryable
        assert raw.membership == before
    assert new == 4
    with pytest.raises(ValueError):
        raw.transfer_leadership(new)  # a learner cannot lead


def test_the_last_voter_cannot_be_removed() -> None:
    pump, leader = _cluster(1)
    raw = pump.nodes[leader].raw
    with pytest.raises(ConfChangeError) as refused:
        raw.propose_conf_change(CONF_REMOVE, leader)
    assert "last voter" in refused.value.explain(lambda i: f"node{i - 1}")
    assert "node0" in refused.value.explain(lambda i: f"node{i - 1}")


def test_ids_of_removed_nodes_are_never_reused() -> None:
    pump, leader = _cluster()
    raw = pump.nodes[leader].raw
    first = _add(pump, leader, "h:4")
    raw.propose_conf_change(CONF_REMOVE, first)
    pump.tick(3)
    second = _add(pump, leader, "h:4")  # the same address again: a fresh id
    assert (first, second) == (4, 5)
    assert raw.membership.was_removed(4) and not raw.membership.was_removed(5)


def test_growing_from_one_voter_and_removing_a_dead_voter_lowers_the_quorum() -> None:
    pump, leader = _cluster(1)
    raw = pump.nodes[leader].raw
    for address in ("h:2", "h:3"):
        new = _add(pump, leader, address)
        pump.tick(3)
        index, _ = raw.propose_conf_change(CONF_PROMOTE, new)
        pump.tick(3)
        assert raw.commit_index >= index
    assert raw.membership.voters == (1, 2, 3)
    pump.isolate(3)
    _propose(pump, leader, 2)
    assert raw.commit_index == raw.status().last_index  # 2 of 3
    pump.isolate(2, 3)
    index, _ = raw.propose_conf_change(CONF_REMOVE, 3)
    pump.deliver()
    # In force at once (thesis 4.1): the voters {1, 2} must both hold it, and 2 is cut off.
    assert raw.commit_index < index
    pump.isolate(3)
    pump.tick(3)
    assert raw.commit_index >= index
    _propose(pump, leader, 2)
    assert raw.commit_index == raw.status().last_index  # 2 of 2, node 3 gone for good


def test_a_restarted_node_recovers_its_configuration_from_log_and_snapshot() -> None:
    pump, leader = _cluster()
    new = _add(pump, leader, "h:4")
    follower = next(i for i in (1, 2, 3) if i != leader)
    pump.nodes[follower].compact()  # the conf entry goes into a snapshot ...
    again = pump.restart(follower)
    assert again.raw.membership.learners == (new,)
    assert again.raw.membership.addresses[new] == "h:4"
    restarted = pump.restart(new)  # ... or stays in the log
    assert restarted.raw.membership.learners == (new,)


def test_a_learner_added_after_compaction_gets_the_configuration_in_the_snapshot() -> None:
    pump, leader = _cluster()
    _propose(pump, leader, 10)
    for node in pump.nodes.values():
        node.compact()
    raw = pump.nodes[leader].raw
    index, new = raw.propose_conf_change(CONF_ADD_LEARNER, address="h:4")
    pump.tick(3)
    for node in pump.nodes.values():
        node.compact()  # the snapshot now covers the conf entry too
    learner = _join(pump, new)
    pump.tick(10)
    assert learner.raw.membership.learners == (new,)
    assert learner.state == pump.nodes[leader].state
    meta = learner.storage.snapshot_metadata()
    assert meta.index >= index and list(meta.conf_state.learners) == [new]


def test_a_conf_entry_is_handed_out_committed_like_any_other() -> None:
    pump, leader = _cluster()
    index, new = pump.nodes[leader].raw.propose_conf_change(CONF_ADD_LEARNER, address="h:4")
    pump.tick(3)
    (entry,) = [e for e in pump.nodes[leader].applied_entries if e.index == index]
    change = conf_change_of(entry)
    assert change is not None and change.node_id == new
    assert Membership.of(change.result).learners == (new,)


def test_4_2_2_a_leader_whose_removal_is_uncommitted_still_campaigns_without_its_own_vote() -> None:
    """Thesis 4.2.2: a server not in its own latest configuration still starts elections while
    that configuration is uncommitted (it may be needed to elect the leader that commits it);
    it does not count its own vote. Without that, a leader cut off right after appending its
    own removal, with one of four voters down, leaves three live voters that never elect: the
    removed one will not campaign, and its longer log refuses the other two's."""
    pump, leader = _cluster(4, seed=11)
    raw = pump.nodes[leader].raw
    pump.isolate(leader)
    index, _ = raw.propose_conf_change(CONF_REMOVE, leader)
    pump.tick(40, nodes=(leader,))  # check-quorum: it steps down, its removal uncommitted
    assert raw.commit_index < index and raw.status().role is not Role.LEADER
    down = next(i for i in pump.ids if i != leader)
    pump.isolate(down)  # the old leader rejoins; one other voter is gone
    live = tuple(i for i in pump.ids if i != down)
    pump.tick(200, nodes=live)
    new_leader = pump.leader()
    assert new_leader in live
    # The change commits, under whichever leader: the removed node ends as no leader.
    assert pump.nodes[new_leader].raw.commit_index >= index
    pump.tick(60, nodes=live)
    assert pump.nodes[leader].raw.role is not Role.LEADER
    assert leader not in pump.nodes[pump.leader()].raw.membership.voters


def test_4_2_2_a_removed_node_does_not_count_its_own_vote() -> None:
    pump, leader = _cluster(3, seed=5)
    raw = pump.nodes[leader].raw
    pump.isolate(*[i for i in pump.ids if i != leader])
    raw.propose_conf_change(CONF_REMOVE, leader)
    pump.deliver()
    pump.tick(100, nodes=(leader,))  # it campaigns, alone: never wins with its own vote
    assert raw.status().role is not Role.LEADER
