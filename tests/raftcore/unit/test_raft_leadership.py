"""Pre-vote (thesis 9.6), check-quorum and leader stickiness (thesis 6.2), leadership transfer
(thesis 3.10)."""

from __future__ import annotations

import pytest
from raftcore_pump import Pump, drain, msg, single

from raftcore import NotLeaderError, ProposalDroppedError, Role
from raftcore.raftpb_pb2 import (
    MSG_APPEND,
    MSG_HEARTBEAT,
    MSG_PRE_VOTE,
    MSG_PRE_VOTE_RESPONSE,
    MSG_TIMEOUT_NOW,
    MSG_VOTE,
)


def test_9_6_pre_vote_does_not_raise_terms_and_a_rejoining_node_does_not_disrupt() -> None:
    """Thesis 9.6: a node cut off from the majority keeps failing its pre-vote, so its term does
    not grow; when it rejoins it cannot depose the working leader."""
    pump = Pump(3, seed=21)
    pump.tick(40)
    leader = pump.leader()
    term = pump.nodes[leader].raw.term
    loner = next(i for i in pump.ids if i != leader)
    pump.isolate(loner)
    pump.tick(100)
    assert pump.nodes[loner].raw.term == term
    assert pump.nodes[loner].raw.role is Role.PRE_CANDIDATE
    pump.heal()
    pump.tick(5)
    assert pump.leader() == leader and pump.nodes[leader].raw.term == term


def test_9_6_pre_vote_then_vote_elects_when_the_leader_is_gone() -> None:
    """Thesis 9.6: pre-vote only asks "would you vote for me?"; with the leader gone the
    others agree, and the real election runs at term + 1."""
    raw, storage = single()
    raw.campaign()
    assert raw.role is Role.PRE_CANDIDATE and raw.term == 0
    pre = drain(raw, storage)
    assert {(m.type, m.term) for m in pre} == {(MSG_PRE_VOTE, 1)}
    raw.step(msg(MSG_PRE_VOTE_RESPONSE, 2, 1, 1))
    assert raw.role is Role.CANDIDATE and raw.term == 1
    assert {(m.type, m.term) for m in drain(raw, storage)} == {(MSG_VOTE, 1)}


def test_9_6_a_pre_vote_request_does_not_change_the_voters_term_or_vote() -> None:
    """Thesis 9.6: granting a pre-vote changes nothing on the voter. (Without check-quorum:
    with it, a voter that just restarted in term 3 refuses every vote for an election timeout,
    see test_raft_lease.py.)"""
    raw, storage = single(i=2, term=3, check_quorum=False)
    raw.step(msg(MSG_PRE_VOTE, 1, 2, 4))
    (answer,) = drain(raw, storage)
    assert answer.type == MSG_PRE_VOTE_RESPONSE and not answer.reject and answer.term == 4
    assert raw.term == 3 and raw.status().vote == 0


def test_6_2_leader_without_a_quorum_steps_down_after_an_election_timeout() -> None:
    """Thesis 6.2 (check-quorum): "a leader steps down if an election timeout elapses without a
    successful round of heartbeats to a majority of its cluster"."""
    pump = Pump(3, seed=2)
    pump.elect(1)
    pump.isolate(1)
    pump.tick(10, nodes=(1,))
    assert pump.nodes[1].raw.role is Role.LEADER
    pump.tick(11, nodes=(1,))
    assert pump.nodes[1].raw.role is Role.FOLLOWER
    with pytest.raises(NotLeaderError):
        pump.nodes[1].raw.propose(b"x")


def test_6_2_a_follower_that_hears_from_its_leader_ignores_vote_requests() -> None:
    """Thesis 6.2 (leader stickiness, which check-quorum relies on): "if a server receives a
    RequestVote request within the minimum election timeout of hearing from a current leader,
    it does not update its term or grant its vote"."""
    raw, storage = single(i=2, term=1)
    raw.step(msg(MSG_HEARTBEAT, 1, 2, 1))
    drain(raw, storage)
    raw.step(msg(MSG_VOTE, 3, 2, 2, index=5, log_term=1))
    assert raw.term == 1 and drain(raw, storage) == []
    for _ in range(10):
        raw.tick()
    raw.step(msg(MSG_VOTE, 3, 2, 2, index=5, log_term=1))
    assert raw.term == 2 and [m.reject for m in drain(raw, storage)] == [False]


def test_3_10_transfer_to_an_up_to_date_follower() -> None:
    """Thesis 3.10: the leader sends TimeoutNow to an up-to-date target, which campaigns at once
    (skipping pre-vote and stickiness) and wins at term + 1."""
    pump = Pump(3, seed=4)
    pump.elect(1)
    term = pump.nodes[1].raw.term
    pump.nodes[1].raw.transfer_leadership(3)
    pump.deliver()
    assert pump.leader() == 3 and pump.nodes[3].raw.term == term + 1
    assert any(m.type == MSG_TIMEOUT_NOW and m.to == 3 for m in pump.delivered)


def test_3_10_transfer_first_brings_a_lagging_target_up_to_date() -> None:
    """Thesis 3.10: the leader stops accepting client requests, replicates to the target until
    it is caught up, and only then sends TimeoutNow; no entry is lost."""
    pump = Pump(3, seed=4)
    pump.elect(1)
    pump.isolate(3)
    for k in range(5):
        pump.nodes[1].raw.propose(b"v%d" % k)
    pump.deliver()
    pump.heal()
    pump.nodes[1].raw.transfer_leadership(3)
    with pytest.raises(ProposalDroppedError):
        pump.nodes[1].raw.propose(b"refused")
    pump.tick(2)
    assert pump.leader() == 3
    kinds = [m.type for m in pump.delivered if m.to == 3 and m.sender == 1]
    assert kinds.index(MSG_APPEND) < kinds.index(MSG_TIMEOUT_NOW)
    pump.nodes[3].raw.propose(b"after")
    pump.deliver()
    want = [b"v%d" % k for k in range(5)] + [b"after"]
    assert all(n.applied_data() == want for n in pump.nodes.values())


def test_3_10_a_transfer_is_abandoned_after_an_election_timeout() -> None:
    """Thesis 3.10: "if the transfer does not complete within an election timeout, the leader
    aborts the transfer and resumes accepting client requests"."""
    pump = Pump(3, seed=4, check_quorum=False)
    pump.elect(1)
    pump.isolate(3)
    pump.nodes[1].raw.transfer_leadership(3)
    pump.tick(5)
    assert pump.nodes[1].raw.status().transferee == 3
    pump.tick(6)
    assert pump.nodes[1].raw.status().transferee == 0
    assert pump.nodes[1].raw.propose(b"accepted again") > 0


def test_3_10_transfer_rejects_bad_targets_and_non_leaders() -> None:
    """Thesis 3.10: only the leader transfers, and only to another voter; a follower names
    the leader."""
    pump = Pump(3, seed=4)
    pump.elect(1)
    with pytest.raises(ValueError):
        pump.nodes[1].raw.transfer_leadership(9)
    with pytest.raises(NotLeaderError) as err:
        pump.nodes[2].raw.transfer_leadership(3)
    assert err.value.leader_hint == 1
