"""The core's building blocks: quorum math (5.2, 5.3), per-follower progress (5.3's nextIndex /
matchIndex), the ReadyPersister sequence and the RawNode hand-off contract."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from raftcore_pump import Pump, drain, entries, msg, single

from raftcore import Config, RaftError, RawNode, Ready, ReadyPersister, SnapshotChunk
from raftcore.memory_storage import MemoryStorage
from raftcore.progress import Progress, ProgressState
from raftcore.quorum import VoteResult, committed_index, vote_result
from raftcore.raftpb_pb2 import (
    MSG_APPEND,
    MSG_APPEND_RESPONSE,
    MSG_HEARTBEAT,
    MSG_PRE_VOTE,
    MSG_SNAPSHOT,
    MSG_SNAPSHOT_RESPONSE,
    ConfState,
    Entry,
    HardState,
    SnapshotMetadata,
)
from raftcore.storage import SnapshotAbortedError, StorageError


@given(st.lists(st.integers(0, 50), min_size=1, max_size=7))
def test_5_3_committed_index_is_the_largest_index_a_majority_matched(matches: list[int]) -> None:
    """5.3: an entry is committed once a majority stores it: the quorum index is the largest N
    with a majority of match >= N (brute force check over every candidate N)."""
    voters = list(range(1, len(matches) + 1))
    got = committed_index(voters, lambda v: matches[v - 1])
    need = len(voters) // 2 + 1
    brute = max(n for n in range(51) if sum(m >= n for m in matches) >= need)
    assert got == brute


@given(st.integers(1, 7), st.data())
def test_5_2_vote_tally_matches_counting(n: int, data: st.DataObject) -> None:
    """5.2: a candidate wins with a majority of granted votes and has lost once a majority can
    no longer be reached."""
    voters = list(range(1, n + 1))
    votes = data.draw(st.dictionaries(st.sampled_from(voters), st.booleans()))
    granted = sum(votes.values())
    rejected = len(votes) - granted
    want = (
        VoteResult.WON
        if granted > n // 2
        else VoteResult.LOST
        if n - rejected <= n // 2
        else VoteResult.PENDING
    )
    assert vote_result(voters, votes) is want


def test_5_3_progress_probe_replicate_and_back() -> None:
    """5.3: the leader keeps nextIndex/matchIndex per follower; a rejection decrements
    nextIndex (here straight to the hint), a success sets matchIndex."""
    pr = Progress(next_index=11, max_inflight=2)
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(12)
    assert pr.is_paused()
    assert not pr.maybe_decr_to(rejected=3, match_hint=0)  # stale: not our last probe
    assert pr.maybe_decr_to(rejected=10, match_hint=6)
    assert pr.next == 7 and not pr.is_paused()
    assert pr.maybe_update(8)
    pr.become_replicate()
    assert (pr.match, pr.next) == (8, 9)
    pr.sent_entries(10)
    pr.sent_entries(12)
    assert pr.next == 13 and pr.is_paused()
    pr.maybe_update(10)
    assert not pr.is_paused() and list(pr.inflights) == [12]
    assert pr.maybe_decr_to(rejected=12, match_hint=0)
    assert pr.next == 11


def test_persister_streams_chunks_across_readys_and_installs_on_done() -> None:
    """7 (figure 13: chunks written at offsets, the snapshot saved on "done"): one writer
    spans Readys; a chunk that does not continue it is refused."""
    storage = MemoryStorage((1, 2, 3))
    persister = ReadyPersister(storage)
    meta = SnapshotMetadata(index=5, term=2, conf_state=ConfState(voters=[1, 2, 3]))
    assert persister.persist(Ready(snapshot_chunks=[SnapshotChunk(meta, 0, b"ab", False)])) is None
    assert storage.snapshot_metadata().index == 0
    with pytest.raises(StorageError):
        persister.persist(Ready(snapshot_chunks=[SnapshotChunk(meta, 5, b"x", True)]))
    installed = persister.persist(Ready(snapshot_chunks=[SnapshotChunk(meta, 2, b"cd", True)]))
    assert installed == meta
    assert storage.read_snapshot(0, 10) == b"abcd" and storage.first_index() == 6


def test_persister_restarts_a_snapshot_on_offset_zero() -> None:
    """7 (figure 13: "create new snapshot file if first chunk (offset is 0)"): a restarted
    transfer discards the partial one."""
    storage = MemoryStorage((1, 2, 3))
    persister = ReadyPersister(storage)
    old = SnapshotMetadata(index=5, term=2)
    new = SnapshotMetadata(index=9, term=3)
    persister.persist(Ready(snapshot_chunks=[SnapshotChunk(old, 0, b"old", False)]))
    persister.persist(Ready(snapshot_chunks=[SnapshotChunk(new, 0, b"new", True)]))
    assert storage.snapshot_metadata().index == 9 and storage.read_snapshot(0, 9) == b"new"


class FailingSaveStorage(MemoryStorage):
    """Fails the next ``failures`` saves, as a full disk would."""

    failures = 0

    def save(
        self, hard_state: HardState | None, entries: Sequence[Entry], *, sync: bool = True
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise StorageError("no space left on device")
        super().save(hard_state, entries, sync=sync)


def test_persister_retry_of_the_same_ready_writes_nothing_twice() -> None:
    """The runner persists a Ready again after a storage error (the core hands it out once):
    the chunks written before the failure are not written again, and the snapshot the first
    attempt committed is still reported as installed."""
    storage = FailingSaveStorage((1, 2, 3))
    persister = ReadyPersister(storage)
    meta = SnapshotMetadata(index=5, term=2, conf_state=ConfState(voters=[1, 2, 3]))
    rd = Ready(
        snapshot_chunks=[SnapshotChunk(meta, 0, b"ab", False), SnapshotChunk(meta, 2, b"cd", True)],
        entries=entries(2, start=6),
        hard_state=HardState(term=2, commit=5),
    )
    storage.failures = 1
    with pytest.raises(StorageError):
        persister.persist(rd)
    assert persister.persist(rd) == meta
    assert storage.read_snapshot(0, 10) == b"abcd"
    assert storage.last_index() == 6 and storage.initial_state()[0].term == 2


def test_persister_writes_a_failed_chunk_again_when_its_ready_is_retried() -> None:
    """A failed chunk write leaves the snapshot as it was (the SnapshotWriter contract), so the
    retry of the same Ready writes that chunk again, even at a non-zero offset, and installs
    the snapshot (issue 14, bug 4: it used to drop the snapshot and stall until a restart)."""
    storage = MemoryStorage((1, 2, 3))
    persister = ReadyPersister(storage)
    meta = SnapshotMetadata(index=5, term=2)
    persister.persist(Ready(snapshot_chunks=[SnapshotChunk(meta, 0, b"ab", False)]))
    rd = Ready(snapshot_chunks=[SnapshotChunk(meta, 2, b"cd", True)])
    writer = persister._writer
    assert writer is not None
    real_write = writer.write
    failures = [StorageError("no space left on device")]

    def failing_write(data: bytes) -> None:
        if failures:
            raise failures.pop()
        real_write(data)

    writer.write = failing_write  # type: ignore[method-assign]
    with pytest.raises(StorageError):
        persister.persist(rd)
    assert storage.snapshot_metadata().index == 0
    assert persister.persist(rd) == meta
    assert storage.read_snapshot(0, 10) == b"abcd"


def test_persister_reports_a_snapshot_lost_by_a_failed_commit_and_forgets_its_ready() -> None:
    """A failed commit closes the writer (the SnapshotWriter contract): the chunks of earlier
    Readys are gone, so the persister raises SnapshotAbortedError instead of a retryable error,
    and a transfer started again from offset 0 installs as usual."""
    storage = MemoryStorage((1, 2, 3))
    persister = ReadyPersister(storage)
    meta = SnapshotMetadata(index=5, term=2)
    persister.persist(Ready(snapshot_chunks=[SnapshotChunk(meta, 0, b"ab", False)]))
    writer = persister._writer
    assert writer is not None

    def failing_commit() -> None:
        writer.abort()
        raise StorageError("no space left on device")

    writer.commit = failing_commit  # type: ignore[method-assign]
    with pytest.raises(SnapshotAbortedError, match="index 5 is lost: no space left"):
        persister.persist(Ready(snapshot_chunks=[SnapshotChunk(meta, 2, b"cd", True)]))
    assert storage.snapshot_metadata().index == 0
    again = [SnapshotChunk(meta, 0, b"ab", False), SnapshotChunk(meta, 2, b"cd", True)]
    assert persister.persist(Ready(snapshot_chunks=again)) == meta
    assert storage.read_snapshot(0, 10) == b"abcd"


def test_restart_forgets_an_unpersisted_snapshot_and_asks_the_leader_to_start_again() -> None:
    """RawNode.restart drops a Ready the runner gave up (no advance needed), and the rebuilt
    core, holding no transfer, answers the leader's resent last chunk with a reject at 0."""
    raw, storage = single(i=2, term=1)
    meta = SnapshotMetadata(index=7, term=1, conf_state=ConfState(voters=[1, 2, 3]))
    raw.step(msg(MSG_SNAPSHOT, 1, 2, 1, snapshot=meta, offset=0, data=b"ab", done=False))
    ReadyPersister(storage).persist(first := raw.ready())
    raw.advance(first)
    raw.step(msg(MSG_SNAPSHOT, 1, 2, 1, snapshot=meta, offset=2, data=b"cd", done=True))
    lost = raw.ready()
    assert [m.done for m in lost.persisted_messages if m.type == MSG_SNAPSHOT_RESPONSE] == [True]
    raw.restart(0)  # the runner could not install the snapshot: lost is given up
    assert raw.commit_index == 0 and raw.status().last_index == 0
    raw.step(msg(MSG_SNAPSHOT, 1, 2, 1, snapshot=meta, offset=2, data=b"cd", done=True))
    rd = raw.ready()
    answers = [(m.reject, m.offset, m.done) for m in rd.persisted_messages]
    assert answers == [(True, 0, False)] and not rd.snapshot_chunks


def test_ready_must_be_advanced_before_the_next_one() -> None:
    """The hand-off contract: a Ready is finished with advance() before the next is taken."""
    raw, _ = single()
    raw.campaign()
    raw.ready()
    with pytest.raises(RaftError):
        raw.ready()


def test_ready_carries_hard_state_and_entries_with_the_messages_they_back() -> None:
    """5.1/5.3 with the Ready contract: a follower's acknowledgement travels in the same Ready
    as the entries and hard state it vouches for, so persisting first makes it truthful."""
    raw, _ = single(i=2, term=1)
    raw.step(msg(MSG_APPEND, 1, 2, 1, index=0, log_term=0, entries=entries(1, 1), commit=1))
    rd = raw.ready()
    assert [e.index for e in rd.entries] == [1, 2]
    assert rd.hard_state is not None and rd.hard_state.commit == 1
    assert [(m.type, m.index) for m in rd.persisted_messages] == [(MSG_APPEND_RESPONSE, 2)]
    assert [e.index for e in rd.committed_entries] == [1]


def test_step_between_ready_and_advance_hands_nothing_out_twice() -> None:
    """The hand-off contract: input between ready() and advance() goes into the next Ready only."""
    raw, storage = single(i=2, term=1)
    raw.step(msg(MSG_APPEND, 1, 2, 1, index=0, log_term=0, entries=entries(1), commit=1))
    first = raw.ready()
    raw.step(msg(MSG_APPEND, 1, 2, 1, index=1, log_term=1, entries=entries(1, start=2), commit=2))
    ReadyPersister(storage).persist(first)
    raw.advance(first)
    second = raw.ready()
    assert [e.index for e in first.entries] == [1] and [e.index for e in second.entries] == [2]
    assert [e.index for e in first.committed_entries] == [1]
    assert [e.index for e in second.committed_entries] == [2]


def test_step_rejects_local_or_misrouted_messages() -> None:
    """Bad input gets a typed error: step() takes only peer messages addressed to this node."""
    raw, _ = single()
    with pytest.raises(ValueError):
        raw.step(msg(20, 2, 1, 1))  # MSG_HUP is local
    with pytest.raises(ValueError):
        raw.step(msg(MSG_HEARTBEAT, 2, 3, 1))


def test_config_and_storage_errors_are_typed() -> None:
    """Bad configuration or an applied index past the commit index is a ValueError at start."""
    with pytest.raises(ValueError):
        single(i=0)
    with pytest.raises(ValueError):
        single(election_tick=1, heartbeat_tick=1)
    with pytest.raises(ValueError, match="applied"):
        RawNode(Config(id=1, voters=(1,)), MemoryStorage((1,)), random.Random(0), applied=5)


def test_configuration_comes_from_storage_before_config() -> None:
    """The voter set is a value: storage's ConfState wins over Config.voters."""
    raw, _ = single(i=1, voters=(1, 2, 3))
    assert list(raw.status().conf_state.voters) == [1, 2, 3]
    five = MemoryStorage((1, 2, 3, 4, 5))
    node = RawNode(Config(id=1, voters=(1, 2, 3)), five, random.Random(0))
    node.campaign()
    assert sorted(m.to for m in drain(node, five) if m.type == MSG_PRE_VOTE) == [2, 3, 4, 5]


def test_report_unreachable_drops_a_streaming_follower_back_to_probe() -> None:
    """5.3 (pipelining): a follower that cannot be reached is probed, not streamed to."""
    pump = Pump(3, seed=1)
    pump.elect(1)
    pump.nodes[1].raw.propose(b"x")
    pump.deliver()
    assert pump.nodes[1].raw.status().progress[2].state == "replicate"
    pump.nodes[1].raw.report_unreachable(2)
    assert pump.nodes[1].raw.status().progress[2].state == "probe"


def test_single_node_cluster_commits_and_reads_alone() -> None:
    """5.3/6.4 with one voter: its own durable log is the majority, and it is trivially the
    leader for reads. Its proposals commit only once persisted, so a read asked before that
    reads at the no-op (the writes are not acknowledged yet: ordering them after is fine)."""
    pump = Pump(1, seed=1)
    pump.elect(1)
    for k in range(3):
        pump.nodes[1].raw.propose(b"%d" % k)
    assert pump.nodes[1].raw.commit_index == 1  # nothing of the proposals is durable yet
    pump.nodes[1].raw.read_index(b"r")
    pump.deliver()
    assert pump.nodes[1].applied_data() == [b"0", b"1", b"2"]
    assert [r.index for r in pump.nodes[1].reads] == [1]
    pump.nodes[1].raw.read_index(b"s")
    pump.deliver()
    assert [r.index for r in pump.nodes[1].reads] == [1, 4]


def test_progress_in_replicate_pauses_at_its_inflight_bytes_bound() -> None:
    """Flow control (issue 14, bug 5): besides the number of unacknowledged appends, their
    bytes are bounded, so a follower that stopped answering holds back at most a window of
    bytes; an acknowledgement, or the one slot a heartbeat response frees, lets more out."""
    pr = Progress(next_index=1, max_inflight=100, max_inflight_bytes=1000)
    pr.become_replicate()
    pr.sent_entries(5, 600)
    assert not pr.is_paused()
    pr.sent_entries(9, 600)
    assert pr.is_paused() and pr.inflight_bytes == 1200
    pr.maybe_update(5)
    assert not pr.is_paused() and pr.inflight_bytes == 600
    pr.sent_entries(12, 600)
    assert pr.is_paused()
    pr.free_first()
    assert not pr.is_paused() and list(pr.inflights) == [12] and pr.inflight_bytes == 600
    pr.become_probe()
    assert pr.inflight_bytes == 0
