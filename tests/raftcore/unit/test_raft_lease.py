"""The leader lease (thesis 6.4.1): it starts when the acknowledged round was *sent*, lasts less
than the followers' vote refusal, runs on a monotonic clock, and ends when a transfer starts.

Each test builds an interleaving in which a lease counted the old way (from the check-quorum
period in which an answer *arrived*, in ticks) lets a deposed leader answer a read at its old
commit index after a new leader committed a newer value: the read must not be served.
"""

from __future__ import annotations

import pytest
from raftcore_pump import Pump

from raftcore import ReadOnlyOption, ReadState, Role
from raftcore.raftpb_pb2 import MSG_HEARTBEAT_RESPONSE, MSG_TIMEOUT_NOW, Message

E = 10  # election timeout in ticks


def lease_pump(*, clocks: bool = False, seed: int = 8) -> Pump:
    """Three nodes, heartbeats every tick, node 1 leading with x = 1 committed (index 2)."""
    pump = Pump(
        3,
        seed=seed,
        clocks=clocks,
        read_only=ReadOnlyOption.LEASE_BASED,
        election_tick=E,
        heartbeat_tick=1,
    )
    pump.elect(1)
    pump.nodes[1].raw.propose(b"x=1")
    pump.deliver()
    assert pump.nodes[1].raw.commit_index == 2
    return pump


def elect_and_write_x2(pump: Pump, candidates: tuple[int, ...] = (2, 3)) -> int:
    """Let one of ``candidates`` win (campaigning node 2 if none did on its own) and commit x=2
    there; returns the new leader."""
    if not any(pump.nodes[i].raw.role is Role.LEADER for i in candidates):
        pump.nodes[candidates[0]].raw.campaign()
        pump.deliver()
    new = next(i for i in candidates if pump.nodes[i].raw.role is Role.LEADER)
    index = pump.nodes[new].raw.propose(b"x=2")
    pump.deliver()
    assert pump.nodes[new].raw.commit_index >= index  # acknowledged to its client
    assert pump.nodes[new].raw.term > pump.nodes[1].raw.term
    return new


def assert_no_stale_read(pump: Pump) -> None:
    """Node 1 still believes it leads at its old commit index: it must not answer a read."""
    old = pump.nodes[1]
    assert old.raw.role is Role.LEADER
    old.raw.read_index(b"read-x")
    pump.deliver()
    assert old.reads == [], f"node 1 answered {old.reads} after x=2 committed elsewhere"


@pytest.mark.parametrize("delay", range(1, 10))
def test_a_late_acknowledgement_extends_the_lease_only_from_its_send_time(delay: int) -> None:
    """Issue 14's interleaving: the leader heartbeats one tick before its check-quorum boundary;
    node 2's answer takes ``delay`` ticks; the links from node 1 fail; the answer lands after the
    boundary. The followers stop refusing votes E ticks after that heartbeat, so the lease it
    renews must end no later (it used to run to the end of the next check-quorum period)."""
    pump = lease_pump()
    pump.tick(E - 2)  # the leader's check-quorum clock now stands at E - 2
    held: list[Message] = []

    def hold(m: Message) -> bool:
        if m.sender == 2 and m.to == 1 and m.type == MSG_HEARTBEAT_RESPONSE:
            held.append(m)
            return True
        return False

    pump.drop = hold
    pump.tick(1)  # t = 0 of the issue: the heartbeat before the boundary; 3 answers at once
    assert len(held) == 1
    pump.isolate(1)  # every link from node 1 fails
    for t in range(1, E):
        pump.tick(1)  # at t = 1 node 1 passes its boundary and starts a new period
        if t == delay:
            pump.nodes[1].raw.step(held[0])  # the late answer lands
            pump.process(1)
    # t = E: the followers last heard from node 1 at t = 0: they elect a new leader.
    pump.tick(1)
    elect_and_write_x2(pump)
    assert_no_stale_read(pump)


def test_a_stalled_leader_loop_does_not_stretch_its_lease() -> None:
    """The leader's loop stalls for 2 E (a snapshot encode, a GC pause): it misses those ticks,
    but its monotonic clock does not. Its lease, from its last acknowledged round, has ended
    when it runs again, although fewer than E ticks passed in its own count."""
    pump = lease_pump(clocks=True)
    now = pump.now
    assert now is not None
    t = 0.0

    def tick(nodes: tuple[int, ...]) -> None:
        for i in nodes:
            now[i] = t
        pump.tick(1, nodes=nodes)

    for _ in range(3):
        t += 1
        tick((1, 2, 3))  # heartbeats answered: the lease runs from t = 3
    pump.isolate(1)  # stalled: node 1 neither ticks nor handles messages
    while t < 3 + 2 * E:
        t += 1
        tick((2, 3))
    elect_and_write_x2(pump)
    t += 1
    tick((1,))  # the loop runs again: one tick (the missed ones are dropped), the clock moved
    assert_no_stale_read(pump)


def test_a_leadership_transfer_ends_the_lease_at_once() -> None:
    """The transfer's target campaigns with votes that skip the refusal period, so the old
    leader must stop serving lease reads the moment it starts the transfer."""
    pump = lease_pump()
    pump.tick(3)
    old = pump.nodes[1]
    old.raw.transfer_leadership(2)
    pump.process(1)
    timeout_now = [m for m in pump.queue if m.type == MSG_TIMEOUT_NOW]
    assert [m.to for m in timeout_now] == [2]
    pump.queue = [m for m in pump.queue if m.type != MSG_TIMEOUT_NOW]
    pump.isolate(1)  # node 1's links fail once its MSG_TIMEOUT_NOW is out
    pump.nodes[2].raw.step(timeout_now[0])
    pump.deliver()
    assert pump.nodes[2].raw.role is Role.LEADER
    elect_and_write_x2(pump)
    assert_no_stale_read(pump)


def test_after_an_abandoned_transfer_reads_confirm_leadership_by_a_round() -> None:
    """A transfer that does not finish within E is abandoned, but its MSG_TIMEOUT_NOW may still
    be on its way: the lease stays off for the rest of the term, and reads still work through
    a heartbeat round."""
    pump = lease_pump()
    old = pump.nodes[1]
    pump.isolate(2)
    old.raw.transfer_leadership(2)  # node 2 is behind and cut off: the transfer cannot finish
    pump.tick(E + 1)
    assert old.raw.role is Role.LEADER and old.raw.status().transferee == 0
    pump.heal()
    pump.tick(1)
    old.raw.read_index(b"after")
    pump.process(1)
    assert old.reads == []  # no lease: the read waits for its round
    pump.deliver()
    assert old.reads == [ReadState(2, b"after")]


def test_lease_reads_answer_at_once_while_acknowledged_rounds_are_fresh() -> None:
    """The fast path still works: within E(1 - margin) of a round a majority acknowledged the
    leader answers without a round trip, and stops once that time has passed."""
    pump = lease_pump(clocks=True)
    now = pump.now
    assert now is not None
    for i in (1, 2, 3):
        now[i] = 1.0
    pump.tick(1)  # a round sent at 1, acknowledged
    old = pump.nodes[1]
    pump.isolate(1)
    now[1] = 1.0 + E * 0.9 - 0.01
    old.raw.read_index(b"in-lease")
    pump.process(1)
    assert old.reads == [ReadState(2, b"in-lease")]
    now[1] = 1.0 + E * 0.9
    old.raw.read_index(b"expired")
    pump.process(1)
    assert [r.context for r in old.reads] == [b"in-lease"]


def test_a_follower_refuses_votes_for_a_full_election_timeout_on_its_clock() -> None:
    """The other half of the lease: a follower that heard from its leader at t refuses every
    vote (and does not campaign itself) until t + E on its own clock, even if its election
    timer fired on ticks."""
    pump = lease_pump(clocks=True)
    now = pump.now
    assert now is not None
    for i in (1, 2, 3):
        now[i] = 5.0
    pump.tick(1)  # nodes 2 and 3 hear from node 1 at 5
    pump.isolate(1)
    for k in range(2 * E):
        now[2] = now[3] = 5.0 + E - 0.5  # ticks fire, but the clock says E has not passed
        pump.tick(1, nodes=(2, 3))
        assert pump.nodes[2].raw.role is Role.FOLLOWER, k
        assert pump.nodes[3].raw.role is Role.FOLLOWER, k
    pump.nodes[2].raw.campaign()  # asked to, it does not campaign either
    pump.deliver()
    assert pump.nodes[2].raw.role is Role.FOLLOWER
    now[2] = now[3] = 5.0 + E
    for _ in range(4 * E):  # both campaign at once now: a split vote may need another round
        pump.tick(1, nodes=(2, 3))
        if Role.LEADER in (pump.nodes[2].raw.role, pump.nodes[3].raw.role):
            break
    assert Role.LEADER in (pump.nodes[2].raw.role, pump.nodes[3].raw.role)


def test_a_restarted_follower_keeps_refusing_votes_for_an_election_timeout() -> None:
    """A follower that answered the leader's round and then crashed forgets when it heard from
    the leader; after its restart it must still refuse votes for E, or a candidate could win
    with its vote while the old leader's lease, which counted its answer, still holds."""
    pump = lease_pump()
    pump.tick(1)  # a round acknowledged by 2 and 3: node 1's lease runs to 1 + 0.9 E
    pump.isolate(1)
    pump.restart(3)
    pump.nodes[2].raw.campaign()
    pump.deliver()
    assert Role.LEADER not in (pump.nodes[2].raw.role, pump.nodes[3].raw.role)
    old = pump.nodes[1]
    old.raw.read_index(b"in-lease")
    pump.process(1)
    assert old.reads == [ReadState(2, b"in-lease")]  # nothing newer is committed anywhere
    pump.tick(E, nodes=(2, 3))
    elect_and_write_x2(pump)  # after E the restarted node votes again


def test_a_term_bump_by_a_stale_rejection_does_not_end_a_followers_refusal() -> None:
    """A follower that just acknowledged the leader's round has its term bumped by a message
    that is not a vote (here a delayed pre-vote rejection from its own earlier pre-campaign), so
    it forgets its leader; the candidate's vote then arrives at the follower's own term. The
    refusal is about *when it last heard a leader*, not whom it follows now: it must still hold,
    or the candidate wins while the old leader serves reads from a lease that vote backed."""
    from raftcore.raftpb_pb2 import MSG_PRE_VOTE_RESPONSE, MSG_VOTE

    pump = lease_pump()
    term = pump.nodes[1].raw.term
    held: list[Message] = []
    cut_leader = [True]

    def drop(m: Message) -> bool:
        if {m.sender, m.to} == {1, 3} or (cut_leader[0] and 1 in (m.sender, m.to)):
            return True
        if (m.type == MSG_VOTE and m.to != 1) or (
            m.type == MSG_PRE_VOTE_RESPONSE and m.reject and m.term > term
        ):
            held.append(m)  # delayed: delivered by hand below
            return True
        return False

    pump.drop = drop
    # Node 1 is cut off; one of nodes 2, 3 wins a pre-vote and campaigns in term + 1 while the
    # other pre-campaigns and is rejected by it (both its vote and that rejection are held).
    for _ in range(4 * E):
        pump.tick(1)
        candidates = [i for i in (2, 3) if pump.nodes[i].raw.role is Role.CANDIDATE]
        if candidates and any(m.type == MSG_PRE_VOTE_RESPONSE for m in held):
            break
    else:
        raise AssertionError("no candidate with a rejected pre-campaign beside it")
    candidate = candidates[0]
    follower = 5 - candidate
    # The leader reaches the other node for one round, which it acknowledges: the lease holds.
    cut_leader[0] = False
    pump.tick(1, nodes=(1,))
    cut_leader[0] = True
    assert pump.nodes[follower].raw.leader_id == 1
    raw = pump.nodes[follower].raw
    raw.step(next(m for m in held if m.type == MSG_PRE_VOTE_RESPONSE))
    pump.deliver()
    assert raw.term == term + 1  # the stale rejection bumped its term
    raw.step(next(m for m in held if m.type == MSG_VOTE and m.to == follower))
    pump.deliver()
    assert pump.nodes[candidate].raw.role is not Role.LEADER, "the refusal was skipped"
