"""Log compaction and InstallSnapshot in chunks (Raft paper section 7), plus restart from
persisted state (section 5.1's durable term, vote and log)."""

from __future__ import annotations

from raftcore_pump import Pump

from raftcore.raftpb_pb2 import MSG_APPEND, MSG_SNAPSHOT, MSG_SNAPSHOT_RESPONSE, Message

CHUNK = 64


def _lagging_follower(entries: int = 60) -> Pump:
    """Leader 1 compacted its log past everything follower 3 has: 3 needs a snapshot."""
    pump = Pump(3, seed=5, snapshot_chunk_bytes=CHUNK)
    pump.elect(1)
    pump.isolate(3)
    for k in range(entries):
        pump.nodes[1].raw.propose(b"value-%03d" % k)
    pump.deliver()
    pump.nodes[1].compact()
    assert pump.nodes[1].storage.first_index() > pump.nodes[3].raw.status().last_index + 1
    pump.heal()
    pump.delivered.clear()
    return pump


def _snapshot_sends(pump: Pump) -> list[Message]:
    return [m for m in pump.delivered if m.type == MSG_SNAPSHOT]


def _assert_converged(pump: Pump) -> None:
    states = [n.applied_data() for n in pump.nodes.values()]
    assert states[0] == states[1] == states[2]
    assert states[0][-1].startswith(b"value-")


def test_7_lagging_follower_gets_the_snapshot_in_bounded_chunks_then_entries() -> None:
    """7: "the leader must occasionally send snapshots to followers that lag behind"; ours
    streams it in chunks of snapshot_chunk_bytes so no message holds the whole snapshot, then
    replication continues with entries after it."""
    pump = _lagging_follower()
    pump.tick(4)
    sends = _snapshot_sends(pump)
    size = pump.nodes[1].storage.snapshot_size()
    assert size > 4 * CHUNK
    assert [m.offset for m in sends] == list(range(0, size, CHUNK))
    assert all(len(m.data) <= CHUNK for m in sends) and [m.done for m in sends][-1]
    assert pump.nodes[3].storage.snapshot_metadata().index == pump.nodes[1].last_applied
    pump.nodes[1].raw.propose(b"value-after")
    pump.deliver()
    _assert_converged(pump)
    assert any(m.type == MSG_APPEND and m.to == 3 for m in pump.delivered)


def test_7_a_lost_chunk_is_resent_from_the_acknowledged_offset_not_from_zero() -> None:
    """7 (chunked InstallSnapshot with offsets, figure 13): a chunk lost in the network is
    retried after a short timeout from the last acknowledged offset; the transfer resumes."""
    pump = _lagging_follower()
    lost: list[int] = []

    def drop_third_chunk(m: Message) -> bool:
        if m.type == MSG_SNAPSHOT and m.offset == 2 * CHUNK and not lost:
            lost.append(m.offset)
            return True
        return False

    pump.drop = drop_third_chunk
    pump.tick(8)
    offsets = [m.offset for m in _snapshot_sends(pump)]
    assert lost == [2 * CHUNK]
    assert offsets.count(0) == 1 and offsets[:3] == [0, CHUNK, 2 * CHUNK]
    _assert_converged(pump)


def test_7_a_lost_final_acknowledgement_does_not_restart_the_transfer() -> None:
    """7: if the follower's answer to the last chunk is lost, the leader's retry finds the
    follower already holding the snapshot, and plain replication resumes."""
    pump = _lagging_follower()
    dropped: list[Message] = []

    def drop_done_ack(m: Message) -> bool:
        if m.type == MSG_SNAPSHOT_RESPONSE and m.done and not dropped:
            dropped.append(m)
            return True
        return False

    pump.drop = drop_done_ack
    pump.tick(8)
    assert dropped
    assert [m.offset for m in _snapshot_sends(pump)].count(0) == 1
    pump.nodes[1].raw.propose(b"value-after")
    pump.deliver()
    _assert_converged(pump)


def test_7_follower_restart_mid_transfer_restarts_it_from_offset_zero() -> None:
    """7: a follower that crashes mid-transfer lost its partial snapshot; it rejects the next
    chunk and the leader starts over."""
    pump = _lagging_follower()
    pump.drop = lambda m: m.type == MSG_SNAPSHOT and m.offset >= 3 * CHUNK
    pump.tick(2)
    pump.restart(3)
    pump.heal()
    pump.tick(10)
    assert [m.offset for m in _snapshot_sends(pump)].count(0) == 2
    _assert_converged(pump)


def test_7_a_newer_snapshot_mid_transfer_replaces_the_old_one() -> None:
    """7: the leader may compact again while a transfer runs; the transfer then restarts with
    the newer snapshot and the follower installs that one."""
    pump = _lagging_follower()
    pump.drop = lambda m: m.type == MSG_SNAPSHOT and m.offset >= 3 * CHUNK
    pump.tick(2)
    for k in range(10):
        pump.nodes[1].raw.propose(b"value-more-%d" % k)
    pump.deliver()
    pump.nodes[1].compact()
    pump.heal()
    pump.tick(10)
    metas = {(m.snapshot.index, m.snapshot.term) for m in _snapshot_sends(pump)}
    assert len(metas) == 2
    assert pump.nodes[3].storage.snapshot_metadata().index == max(i for i, _ in metas)
    _assert_converged(pump)


def test_5_1_and_7_every_node_restarts_from_what_it_persisted() -> None:
    """5.1/7: term, vote and log (with its snapshot) are persistent state; a node restarted
    from a copy of its storage rebuilds its state machine from the snapshot plus the log and
    the cluster carries on."""
    pump = Pump(3, seed=9, snapshot_chunk_bytes=CHUNK)
    pump.elect(1)
    for k in range(30):
        pump.nodes[1].raw.propose(b"value-%03d" % k)
    pump.deliver()
    for n in pump.nodes.values():
        n.compact()
    for k in range(30, 40):
        pump.nodes[1].raw.propose(b"value-%03d" % k)
    pump.deliver()
    before = {i: (n.raw.term, n.storage.initial_state()[0].vote) for i, n in pump.nodes.items()}
    for i in pump.ids:
        pump.restart(i)
    after = {i: (n.raw.term, n.storage.initial_state()[0].vote) for i, n in pump.nodes.items()}
    assert before == after
    pump.tick(40)
    leader = pump.leader()
    assert leader
    pump.nodes[leader].raw.propose(b"value-040")
    pump.deliver()
    want = [b"value-%03d" % k for k in range(41)]
    assert all(n.applied_data() == want for n in pump.nodes.values())
