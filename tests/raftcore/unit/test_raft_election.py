"""Leader election (Raft paper sections 5.1, 5.2, 5.4.1), driving RawNodes directly."""

from __future__ import annotations

import pytest
from raftcore_pump import Pump, drain, entries, msg, single

from raftcore import RawNode, Role
from raftcore.raftpb_pb2 import (
    MSG_APPEND,
    MSG_APPEND_RESPONSE,
    MSG_HEARTBEAT,
    MSG_VOTE,
    MSG_VOTE_RESPONSE,
)


def _leader_of_term_1() -> tuple[RawNode, object]:
    raw, storage = single(pre_vote=False)
    raw.campaign()
    raw.step(msg(MSG_VOTE_RESPONSE, 2, 1, 1))
    assert raw.role is Role.LEADER
    return raw, storage


@pytest.mark.parametrize("role", ["follower", "candidate", "leader"])
def test_5_1_any_role_adopts_a_higher_term_and_becomes_follower(role: str) -> None:
    """5.1: "If a server's current term is smaller than the other's, it updates its current term
    to the larger value. If a candidate or leader discovers that its term is out of date, it
    immediately reverts to follower state." """
    if role == "leader":
        raw, _ = _leader_of_term_1()
    else:
        raw, _ = single(pre_vote=False)
        if role == "candidate":
            raw.campaign()
    raw.step(msg(MSG_APPEND, 2, 1, 5, index=0, log_term=0))
    assert (raw.term, raw.role, raw.leader_id) == (5, Role.FOLLOWER, 2)


def test_5_1_a_stale_term_message_is_rejected_with_the_newer_term() -> None:
    """5.1: "If a server receives a request with a stale term number, it rejects the request."
    The answer carries our term so a deposed leader steps down."""
    raw, storage = single(term=3, log=entries(1, 2))
    raw.step(msg(MSG_APPEND, 2, 1, 2, index=2, log_term=2, entries=entries(2, start=3)))
    sent = drain(raw, storage)
    assert [(m.type, m.term) for m in sent] == [(MSG_APPEND_RESPONSE, 3)]
    assert raw.status().last_index == 2 and raw.leader_id == 0


def test_5_2_follower_times_out_and_campaigns_voting_for_itself() -> None:
    """5.2: after an election timeout a follower "increments its current term and transitions to
    candidate state. It then votes for itself and issues RequestVote RPCs in parallel"."""
    raw, _ = single(pre_vote=False, election_tick=10, log=entries(1, 1), term=1)
    for _ in range(20):
        raw.tick()
    assert raw.role is Role.CANDIDATE and raw.term == 2
    rd = raw.ready()
    assert rd.hard_state is not None and rd.hard_state.vote == 1 and rd.hard_state.term == 2
    votes = sorted((m.to, m.type, m.term, m.index, m.log_term) for m in rd.persisted_messages)
    assert votes == [(2, MSG_VOTE, 2, 2, 1), (3, MSG_VOTE, 2, 2, 1)]


def test_5_2_election_timeouts_are_randomized_within_one_to_two_timeouts() -> None:
    """5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed interval"
    so that split votes are rare. Here [election_tick, 2 * election_tick)."""
    seen = set()
    for seed in range(40):
        raw, _ = single(pre_vote=False, election_tick=10, seed=seed)
        ticks = 0
        while raw.role is Role.FOLLOWER:
            raw.tick()
            ticks += 1
        assert 10 <= ticks < 20
        seen.add(ticks)
    assert len(seen) >= 5


def test_5_2_candidate_wins_with_a_majority_and_sends_its_no_op() -> None:
    """5.2: "A candidate wins an election if it receives votes from a majority"; then it sends
    AppendEntries to establish its authority (our leader's first entry is an empty no-op)."""
    raw, storage = single(pre_vote=False, voters=(1, 2, 3, 4, 5))
    raw.campaign()
    raw.step(msg(MSG_VOTE_RESPONSE, 2, 1, 1))
    assert raw.role is Role.CANDIDATE
    raw.step(msg(MSG_VOTE_RESPONSE, 3, 1, 1))
    assert raw.role is Role.LEADER
    appends = [m for m in drain(raw, storage) if m.type == MSG_APPEND]
    assert sorted(m.to for m in appends) == [2, 3, 4, 5]
    assert all(len(m.entries) == 1 and m.entries[0].data == b"" for m in appends)


def test_5_2_candidate_loses_on_a_majority_of_rejections() -> None:
    """5.2: a candidate that cannot win returns to follower (and waits out a new timeout)."""
    raw, _ = single(pre_vote=False)
    raw.campaign()
    raw.step(msg(MSG_VOTE_RESPONSE, 2, 1, 1, reject=True))
    assert raw.role is Role.CANDIDATE
    raw.step(msg(MSG_VOTE_RESPONSE, 3, 1, 1, reject=True))
    assert raw.role is Role.FOLLOWER and raw.term == 1


def test_5_2_candidate_yields_to_a_leader_of_its_term() -> None:
    """5.2: "If the leader's term ... is at least as large as the candidate's current term, then
    the candidate recognizes the leader as legitimate and returns to follower state." """
    raw, _ = single(pre_vote=False)
    raw.campaign()
    raw.step(msg(MSG_HEARTBEAT, 3, 1, 1))
    assert (raw.role, raw.leader_id, raw.term) == (Role.FOLLOWER, 3, 1)


def test_5_2_at_most_one_vote_per_term_and_it_is_persisted_before_the_answer() -> None:
    """5.2: "each server will vote for at most one candidate in a given term, on a first-come-
    first-served basis"; the vote is in the same Ready's hard state, persisted before sending."""
    raw, storage = single(check_quorum=False)
    raw.step(msg(MSG_VOTE, 2, 1, 1))
    rd = raw.ready()
    assert rd.hard_state is not None and rd.hard_state.vote == 2
    assert [(m.to, m.reject) for m in rd.persisted_messages] == [(2, False)]
    raw.advance(rd)
    raw.step(msg(MSG_VOTE, 3, 1, 1))
    raw.step(msg(MSG_VOTE, 2, 1, 1))  # a retransmission gets the same answer
    assert [(m.to, m.reject) for m in drain(raw, storage)] == [(3, True), (2, False)]


@pytest.mark.parametrize(
    ("cand_last_term", "cand_last_index", "granted"),
    [
        (1, 5, False),  # lower last term loses even with a longer log
        (2, 2, False),  # same last term, shorter log
        (2, 3, True),  # same last term, same length
        (2, 4, True),  # same last term, longer
        (3, 1, True),  # higher last term wins even with a shorter log
    ],
)
def test_5_4_1_vote_only_for_an_at_least_as_up_to_date_log(
    cand_last_term: int, cand_last_index: int, granted: bool
) -> None:
    """5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
    candidate": compare last terms, then lengths."""
    raw, storage = single(log=entries(1, 1, 2), term=2, check_quorum=False)
    raw.step(msg(MSG_VOTE, 2, 1, 3, index=cand_last_index, log_term=cand_last_term))
    (answer,) = drain(raw, storage)
    assert answer.type == MSG_VOTE_RESPONSE and answer.reject is not granted


def test_5_2_a_cluster_elects_exactly_one_leader_and_keeps_it() -> None:
    """5.2: election safety with randomized timeouts: one leader per term, stable without
    failures (heartbeats keep followers from timing out)."""
    pump = Pump(5, seed=7)
    pump.tick(40)
    leader = pump.leader()
    assert leader != 0
    term = pump.nodes[leader].raw.term
    pump.tick(100)
    assert pump.leader() == leader and pump.nodes[leader].raw.term == term
    assert all(n.raw.leader_id == leader for n in pump.nodes.values())
