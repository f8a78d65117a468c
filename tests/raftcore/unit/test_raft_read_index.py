"""ReadIndex and lease reads (thesis section 6.4)."""

from __future__ import annotations

import pytest
from raftcore_pump import Pump, drain, msg, single

from raftcore import NotLeaderError, ReadOnlyOption, ReadState
from raftcore.raftpb_pb2 import (
    MSG_APPEND_RESPONSE,
    MSG_HEARTBEAT,
    MSG_HEARTBEAT_RESPONSE,
    MSG_VOTE_RESPONSE,
)


def test_6_4_read_index_waits_for_a_heartbeat_quorum_and_reports_the_commit_index() -> None:
    """Thesis 6.4 steps 1-3: record the commit index, confirm leadership with a heartbeat round
    carrying the request, then the read may be served once that index is applied."""
    pump = Pump(3, seed=8)
    pump.elect(1)
    for k in range(3):
        pump.nodes[1].raw.propose(b"v%d" % k)
    pump.deliver()
    pump.nodes[1].raw.read_index(b"req-1")
    pump.deliver()
    assert pump.nodes[1].reads == [ReadState(4, b"req-1")]
    beats = [m for m in pump.delivered if m.type == MSG_HEARTBEAT and m.context == b"req-1"]
    assert sorted(m.to for m in beats) == [2, 3]


def test_6_4_no_read_index_before_the_leader_commits_an_entry_of_its_term() -> None:
    """Thesis 6.4 step 1: "If the leader has not yet marked an entry from its current term
    committed, it waits until it has done so": its commit index may be stale until then."""
    raw, storage = single(pre_vote=False)
    raw.campaign()
    raw.step(msg(MSG_VOTE_RESPONSE, 2, 1, 1))
    drain(raw, storage)
    raw.read_index(b"early")
    assert not [m for m in drain(raw, storage) if m.context == b"early"]
    raw.step(msg(MSG_APPEND_RESPONSE, 2, 1, 1, index=1))  # the no-op commits
    heartbeats = [m for m in drain(raw, storage) if m.context == b"early"]
    assert sorted(m.to for m in heartbeats) == [2, 3]
    raw.step(msg(MSG_HEARTBEAT_RESPONSE, 3, 1, 1, context=b"early"))
    rd = raw.ready()
    assert rd.read_states == [ReadState(1, b"early")]


def test_6_4_a_deposed_leader_cut_off_from_the_majority_never_answers() -> None:
    """Thesis 6.4: without a heartbeat quorum the leader cannot know it still leads, so it must
    not serve the read (a newer leader may have committed writes)."""
    pump = Pump(3, seed=8)
    pump.elect(1)
    pump.isolate(1)
    pump.nodes[1].raw.read_index(b"stale?")
    pump.tick(3, nodes=(1,))
    assert pump.nodes[1].reads == []


def test_6_4_an_acknowledgement_releases_every_earlier_request_too() -> None:
    """Thesis 6.4 (batching): a heartbeat round that confirms leadership after a request arrived
    also confirms it for every request queued before it."""
    pump = Pump(3, seed=8)
    pump.elect(1)
    pump.isolate(1)
    pump.nodes[1].raw.read_index(b"a")
    pump.nodes[1].raw.read_index(b"b")
    pump.deliver()
    pump.heal()
    pump.tick(1)
    assert [r.context for r in pump.nodes[1].reads] == [b"a", b"b"]


def test_6_4_lease_reads_answer_at_once() -> None:
    """Thesis 6.4 (lease): with check-quorum's lease the leader answers without a round trip,
    trusting bounded clock drift (documented on RawNode.read_index)."""
    pump = Pump(3, seed=8, read_only=ReadOnlyOption.LEASE_BASED)
    pump.elect(1)
    pump.delivered.clear()
    pump.nodes[1].raw.read_index(b"fast")
    pump.process(1)
    assert pump.nodes[1].reads == [ReadState(1, b"fast")]
    assert pump.queue == []


def test_6_4_followers_refuse_and_bad_contexts_are_rejected() -> None:
    """Thesis 6.4: reads go to the leader (followers name it); contexts must be unique and
    non-empty."""
    pump = Pump(3, seed=8)
    pump.elect(1)
    with pytest.raises(NotLeaderError) as err:
        pump.nodes[2].raw.read_index(b"x")
    assert err.value.leader_hint == 1
    with pytest.raises(ValueError):
        pump.nodes[1].raw.read_index(b"")
    pump.nodes[1].raw.read_index(b"dup")
    with pytest.raises(ValueError):
        pump.nodes[1].raw.read_index(b"dup")


def test_6_4_lease_reads_fall_back_to_a_heartbeat_round_without_a_fresh_quorum() -> None:
    """Thesis 6.4 (lease): once a check-quorum period passes without hearing from a majority,
    the lease is not trusted and the read waits for a heartbeat quorum instead."""
    pump = Pump(3, seed=8, read_only=ReadOnlyOption.LEASE_BASED, election_tick=10)
    pump.elect(1)
    pump.isolate(1)
    pump.tick(10, nodes=(1,))  # a check-quorum period ends: the flags start over
    pump.nodes[1].raw.read_index(b"needs-a-round")
    pump.process(1)
    assert pump.nodes[1].reads == []
    pump.heal()
    pump.tick(1, nodes=(1,))
    assert [r.context for r in pump.nodes[1].reads] == [b"needs-a-round"]
