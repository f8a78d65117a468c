"""Log replication and commitment (Raft paper sections 5.3, 5.4.2), driving RawNodes directly."""

from __future__ import annotations

from raftcore_pump import Pump, drain, entries, msg, single

from raftcore import Role
from raftcore.raftpb_pb2 import (
    MSG_APPEND,
    MSG_APPEND_RESPONSE,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESPONSE,
    MSG_VOTE_RESPONSE,
    HardState,
)


def _leader(**config: object):  # type: ignore[no-untyped-def]
    raw, storage = single(pre_vote=False, **config)
    raw.campaign()
    raw.step(msg(MSG_VOTE_RESPONSE, 2, 1, 1))
    sent = drain(raw, storage)  # the no-op's MSG_APPENDs (followers are probed)
    for m in sent:
        raw.step(msg(MSG_APPEND_RESPONSE, m.to, 1, 1, index=1))
    drain(raw, storage)
    assert raw.commit_index == 1
    return raw, storage


def test_5_3_a_proposal_is_sent_at_once_not_on_the_next_heartbeat() -> None:
    """5.3: the leader "issues AppendEntries RPCs in parallel to each of the other servers to
    replicate the entry" as soon as it appends it: no tick is needed."""
    raw, storage = _leader()
    raw.propose(b"x")
    sent = drain(raw, storage)
    assert sorted((m.to, m.type, [e.data for e in m.entries]) for m in sent) == [
        (2, MSG_APPEND, [b"x"]),
        (3, MSG_APPEND, [b"x"]),
    ]


def test_5_3_proposals_before_a_ready_are_batched_into_one_append_per_follower() -> None:
    """5.3: AppendEntries carries "log entries to store (may send more than one for
    efficiency)": 50 proposals made before the runner asks for a Ready go in one message."""
    raw, storage = _leader()
    for k in range(50):
        raw.propose(b"%d" % k)
    sent = drain(raw, storage)
    assert sorted(m.to for m in sent) == [2, 3]
    assert all([e.index for e in m.entries] == list(range(2, 52)) for m in sent)


def test_5_3_replication_is_pipelined_within_the_inflight_window() -> None:
    """5.3 (pipelining): a follower known to match gets new appends without waiting for acks,
    up to max_inflight_msgs unacknowledged messages; an ack reopens the window."""
    raw, storage = _leader(max_inflight_msgs=2)
    counts = []
    for k in range(3):
        raw.propose(b"%d" % k)
        counts.append(sum(m.to == 2 for m in drain(raw, storage)))
    assert counts == [1, 1, 0]
    raw.step(msg(MSG_APPEND_RESPONSE, 2, 1, 1, index=2))
    (resumed,) = [m for m in drain(raw, storage) if m.to == 2]
    assert [e.index for e in resumed.entries] == [4]


def test_5_3_probe_mode_sends_one_append_per_heartbeat_until_a_match() -> None:
    """5.3: until the leader finds where a follower's log matches, it probes: one message, then
    wait (for the answer or the next heartbeat response) instead of flooding."""
    raw, storage = single(pre_vote=False, heartbeat_tick=1)
    raw.campaign()
    raw.step(msg(MSG_VOTE_RESPONSE, 2, 1, 1))
    drain(raw, storage)
    raw.propose(b"a")
    raw.propose(b"b")
    assert [m for m in drain(raw, storage) if m.to == 2] == []  # probe outstanding
    raw.tick()
    beats = [m for m in drain(raw, storage) if m.to == 2]
    assert [m.type for m in beats] == [MSG_HEARTBEAT]
    raw.step(msg(MSG_HEARTBEAT_RESPONSE, 2, 1, 1))
    (probe,) = [m for m in drain(raw, storage) if m.to == 2]
    assert probe.type == MSG_APPEND and probe.index == 0 and len(probe.entries) == 3


def test_5_3_follower_rejects_an_append_that_fails_the_consistency_check() -> None:
    """5.3: "If the follower does not find an entry in its log with the same index and term,
    then it refuses the new entries"; the reply hints where to retry (fast back-up)."""
    raw, storage = single(log=entries(1, 1, 2, 2, 2), term=2)
    raw.step(msg(MSG_APPEND, 2, 1, 3, index=5, log_term=3, entries=entries(3, start=6)))
    (reply,) = drain(raw, storage)
    assert reply.type == MSG_APPEND_RESPONSE and reply.reject
    # The last index whose term is <= 3 is 5 (term 2): the leader can skip straight to it.
    assert (reply.index, reply.reject_hint, reply.reject_term) == (5, 5, 2)
    assert raw.status().last_index == 5


def test_5_3_follower_deletes_a_conflicting_suffix_and_appends() -> None:
    """5.3: "If an existing entry conflicts with a new one (same index but different terms),
    delete the existing entry and all that follow it"; the Ready's entries overwrite the tail."""
    raw, storage = single(log=entries(1, 1, 2, 2, 2), term=2)
    new = entries(3, 3, start=3)
    raw.step(msg(MSG_APPEND, 2, 1, 3, index=2, log_term=1, entries=new, commit=3))
    rd = raw.ready()
    assert [(e.index, e.term) for e in rd.entries] == [(3, 3), (4, 3)]
    assert [e.index for e in rd.committed_entries] == [1, 2, 3]
    raw.advance(rd)
    storage.save(rd.hard_state, rd.entries)
    assert [storage.term(i) for i in range(1, 5)] == [1, 1, 3, 3]
    assert storage.last_index() == 4


def test_5_3_fast_back_up_converges_in_one_round_trip_per_conflicting_term() -> None:
    """5.3 (the optimization at the end of the section): with the conflicting term in the
    rejection, the leader skips a whole term per round trip, not one entry. A deposed leader
    holding 50 uncommitted entries of term 1 (figure 7 (f)-like), behind a new leader with 60
    entries of term 2, is repaired after a single rejection instead of dozens."""
    pump = Pump(3, seed=3, pre_vote=False)
    pump.elect(1)
    for k in range(5):
        pump.nodes[1].raw.propose(b"c%d" % k)
    pump.deliver()
    # The leader, cut off, takes 50 entries that only it stores...
    pump.isolate(1)
    for k in range(50):
        pump.nodes[1].raw.propose(b"stale%d" % k)
    pump.tick(30, nodes=(2, 3))  # ...while 2 and 3 elect a leader of a newer term
    new_leader = pump.leader()
    assert new_leader in (2, 3)
    for k in range(60):
        pump.nodes[new_leader].raw.propose(b"new%d" % k)
    pump.deliver()
    # A further leader (term 3) starts probing node 1 from its last index, 67.
    pump.nodes[new_leader].raw.transfer_leadership(5 - new_leader)
    pump.deliver()
    assert pump.leader() == 5 - new_leader
    pump.delivered.clear()
    pump.heal()
    pump.tick(3)
    rejections = [m for m in pump.delivered if m.type == MSG_APPEND_RESPONSE and m.reject]
    assert len(rejections) == 1
    assert (rejections[0].reject_hint, rejections[0].reject_term) == (56, 1)
    logs = {i: n.applied_data() for i, n in pump.nodes.items()}
    assert logs[1] == logs[2] == logs[3]
    assert not any(d.startswith(b"stale") for d in logs[1])


def test_5_3_heartbeats_carry_no_entries_and_commit_only_up_to_the_followers_match() -> None:
    """5.3/5.4: heartbeats are empty AppendEntries; ours carry commit = min(match, commit) so a
    follower never commits past what it is known to hold."""
    raw, storage = _leader()
    raw.propose(b"x")
    drain(raw, storage)
    raw.step(msg(MSG_APPEND_RESPONSE, 3, 1, 1, index=2))
    drain(raw, storage)
    assert raw.commit_index == 2
    raw.tick()
    beats = {m.to: m for m in drain(raw, storage) if m.type == MSG_HEARTBEAT}
    assert not beats[2].entries and not beats[3].entries
    assert (beats[2].commit, beats[3].commit) == (1, 2)


def test_5_4_2_leader_commits_only_current_term_entries_by_counting_replicas() -> None:
    """5.4.2 / figure 8: an entry from an older term is not committed by being stored on a
    majority; it commits only once an entry of the leader's own term is."""
    # Node 1 was leader in term 2 and stored index 2 (term 2) locally; it is now leader of term 4.
    # (No check-quorum: with it, a voter restarted in term 3 waits an election timeout first.)
    raw, storage = single(pre_vote=False, check_quorum=False, log=entries(1, 2), term=3, commit=1)
    raw.campaign()
    raw.step(msg(MSG_VOTE_RESPONSE, 2, 1, 4))
    assert raw.role is Role.LEADER and raw.term == 4
    drain(raw, storage)
    # Follower 2 now holds index 2 (term 2), but not yet the term-4 no-op at index 3.
    raw.step(msg(MSG_APPEND_RESPONSE, 2, 1, 4, index=2))
    drain(raw, storage)
    assert raw.commit_index == 1
    raw.step(msg(MSG_APPEND_RESPONSE, 2, 1, 4, index=3))
    drain(raw, storage)
    assert raw.commit_index == 3


def test_5_3_committed_entries_are_applied_in_order_on_every_node() -> None:
    """5.3: once committed, entries are applied in log order on all servers (state machine
    safety, 5.4.3)."""
    pump = Pump(5, seed=11)
    pump.tick(40)
    leader = pump.leader()
    for k in range(20):
        pump.nodes[leader].raw.propose(b"v%d" % k)
    pump.deliver()
    pump.tick(2)
    want = [b"v%d" % k for k in range(20)]
    assert all(n.applied_data() == want for n in pump.nodes.values())


def test_5_3_followers_learn_the_commit_index_without_waiting_for_a_heartbeat() -> None:
    """5.3: "the leader keeps track of the highest index it knows to be committed, and it
    includes that index in future AppendEntries RPCs": ours sends them as soon as the commit
    index moves, so followers apply without any tick."""
    pump = Pump(3, seed=12)
    pump.elect(1)
    pump.nodes[1].raw.propose(b"now")
    pump.deliver()
    assert all(n.applied_data() == [b"now"] for n in pump.nodes.values())


def test_a_ready_that_only_moves_the_commit_index_need_not_be_synced() -> None:
    """Thesis 3.8 keeps only currentTerm, votedFor and the log on stable storage: a follower
    learning a new commit index from a heartbeat may acknowledge it without a sync, while new
    entries, a new term or a vote are synced before anything speaks for them."""
    raw, _ = single(i=2, log=entries(1, 1), term=1, commit=0)
    raw.step(msg(MSG_HEARTBEAT, 1, 2, 1, commit=2))
    rd = raw.ready()
    assert rd.hard_state is not None and rd.hard_state.commit == 2
    assert not rd.entries and not rd.must_sync
    raw.advance(rd)
    raw.step(msg(MSG_APPEND, 1, 2, 1, index=2, log_term=1, commit=2, entries=entries(1, start=3)))
    rd = raw.ready()
    assert rd.entries and rd.must_sync
    raw.advance(rd)
    raw.step(msg(MSG_HEARTBEAT, 3, 2, 2))  # a new term, nothing else
    rd = raw.ready()
    assert rd.hard_state is not None and rd.hard_state.term == 2 and rd.must_sync


def test_an_unsynced_commit_index_is_what_a_crash_may_lose() -> None:
    """The simulated crash image keeps the commit index of the last synced save only."""
    _, storage = single(log=entries(1, 1, 1), term=1, commit=1)
    storage.save(HardState(term=1, commit=3), [], sync=False)
    assert storage.initial_state()[0].commit == 3
    assert storage.copy().initial_state()[0].commit == 1
    storage.save(None, entries(1, start=4))
    assert storage.copy().initial_state()[0].commit == 3
