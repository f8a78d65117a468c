"""Replicas on three in-memory Raft cores: writes, ReadIndex reads, leader loss, snapshots."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.replica import Replica, restore_machine
from kvserver.state_machine import KVStateMachine
from raftcore import Config, RawNode, Role
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import (
    MSG_APPEND,
    MSG_APPEND_RESPONSE,
    MSG_VOTE,
    MSG_VOTE_RESPONSE,
    Entry,
    HardState,
    Message,
)
from raftcore.storage import StorageError
from rpc.codec import DEFAULT_MAX_FRAME_SIZE


@dataclass
class Outcome:
    values: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def resolve(self, value: Any) -> None:
        self.values.append(value)

    def reject(self, err: str) -> None:
        self.errors.append(err)

    @property
    def done(self) -> bool:
        return bool(self.values or self.errors)


class Cluster:
    def __init__(self, n: int = 3, max_raft_state: int | None = None, seed: int = 5) -> None:
        self.ids = tuple(range(1, n + 1))
        self.rng = random.Random(seed)
        self.max_raft_state = max_raft_state
        self.queue: list[Message] = []
        self.cut: set[int] = set()
        self.replicas: dict[int, Replica] = {}
        for i in self.ids:
            self.start(i, MemoryStorage(self.ids))

    def start(self, i: int, storage: MemoryStorage) -> Replica:
        machine = KVStateMachine(random.Random(i))
        restore_machine(storage, machine)
        node = RawNode(
            Config(id=i, voters=self.ids, snapshot_chunk_bytes=64),
            storage,
            random.Random(self.rng.random()),
            applied=storage.snapshot_metadata().index,
        )
        self.replicas[i] = Replica(node, storage, machine, max_raft_state=self.max_raft_state)
        return self.replicas[i]

    def settle(self, rounds: int = 200, tick: bool = False) -> None:
        for _ in range(rounds):
            progressed = False
            for r in self.replicas.values():
                if tick:
                    r.tick()
                progressed |= r.handle_ready(self.queue.extend)
            queue, self.queue = self.queue, []
            for m in queue:
                if m.to in self.replicas and m.to not in self.cut and m.sender not in self.cut:
                    self.replicas[m.to].step([Message.FromString(m.SerializeToString())])
                    progressed = True
            if not progressed and not tick:
                return

    def elect(self, i: int = 1) -> Replica:
        self.replicas[i].campaign()
        self.settle()
        assert self.replicas[i].role is Role.LEADER
        return self.replicas[i]

    def until(self, cond: Callable[[], bool], rounds: int = 500) -> None:
        for _ in range(rounds):
            if cond():
                return
            self.settle(1, tick=True)
        raise AssertionError("condition never held")


def put(
    key: bytes, value: bytes, rid: int, client: bytes = b"c", op: Op.ValueType = Op.OP_PUT
) -> Command:
    return Command(client_id=client, request_id=rid, op=op, key=key, value=value)


def test_a_write_is_answered_once_committed_and_applied_everywhere() -> None:
    c = Cluster()
    leader = c.elect()
    out = Outcome()
    leader.propose(put(b"k", b"v", 1), out)
    assert not out.done  # nothing is answered before the entry commits
    c.settle()
    assert out.values == [Result(err=Err.OK)]
    assert all(r.machine.get(b"k") == b"v" for r in c.replicas.values())


def test_a_follower_refuses_writes_and_reads() -> None:
    c = Cluster()
    c.elect(1)
    out_w, out_r = Outcome(), Outcome()
    c.replicas[2].propose(put(b"k", b"v", 1), out_w)
    c.replicas[2].read(lambda m: m.get(b"k"), out_r)
    assert out_w.errors == [Err.WRONG_LEADER]
    assert out_r.errors == [Err.WRONG_LEADER]


def test_reads_wait_for_a_heartbeat_round_and_see_every_acknowledged_write() -> None:
    c = Cluster()
    leader = c.elect()
    w = Outcome()
    leader.propose(put(b"k", b"v", 1), w)
    c.settle()
    reads = [Outcome() for _ in range(5)]
    for r in reads:
        leader.read(lambda m: m.get(b"k"), r)
    assert not any(r.done for r in reads)  # leadership is not confirmed yet
    c.settle()
    assert [r.values for r in reads] == [[b"v"]] * 5


def test_a_cut_off_leader_serves_no_read() -> None:
    """A deposed leader that cannot reach a majority must not answer from stale state."""
    c = Cluster()
    old = c.elect(1)
    c.cut = {1}
    r = Outcome()
    old.read(lambda m: m.get(b"k"), r)
    c.until(lambda: any(x.role is Role.LEADER for i, x in c.replicas.items() if i != 1))
    c.until(lambda: r.done)
    assert r.values == []
    assert r.errors == [Err.WRONG_LEADER]


def test_stale_reads_are_served_at_once_anywhere() -> None:
    c = Cluster()
    c.elect()
    r = Outcome()
    c.replicas[3].read(lambda m: m.get(b"missing"), r, stale=True)
    assert r.values == [None]


def test_pending_writes_fail_when_leadership_is_lost() -> None:
    c = Cluster()
    old = c.elect(1)
    c.cut = {1}
    w = Outcome()
    old.propose(put(b"k", b"lost", 1), w)
    c.until(lambda: w.done)
    assert w.errors == [Err.WRONG_LEADER]
    c.cut = set()
    c.until(lambda: any(r.role is Role.LEADER for r in c.replicas.values()))
    new = next(r for r in c.replicas.values() if r.role is Role.LEADER)
    retry = Outcome()
    new.propose(put(b"k", b"lost", 1), retry)
    c.until(lambda: retry.done)
    assert retry.values == [Result(err=Err.OK)]


def test_a_retried_append_through_a_new_leader_applies_once() -> None:
    c = Cluster()
    leader = c.elect(1)
    first = Outcome()
    leader.propose(put(b"k", b"x", 1, op=Op.OP_APPEND), first)
    c.settle()
    assert first.values == [Result(err=Err.OK)]
    leader.transfer_leadership(2)
    c.settle()
    assert c.replicas[2].role is Role.LEADER
    again = Outcome()
    c.replicas[2].propose(put(b"k", b"x", 1, op=Op.OP_APPEND), again)
    c.settle()
    assert again.values == [Result(err=Err.OK)]
    assert all(r.machine.get(b"k") == b"x" for r in c.replicas.values())


@pytest.mark.parametrize("max_raft_state", [300, 2000])
def test_log_stays_bounded_and_a_lagging_follower_catches_up_by_snapshot(
    max_raft_state: int,
) -> None:
    c = Cluster(max_raft_state=max_raft_state)
    leader = c.elect(1)
    c.cut = {3}
    for n in range(200):
        w = Outcome()
        leader.propose(put(b"k%d" % (n % 10), b"v%d" % n, n + 1), w)
        c.settle()
        assert w.values == [Result(err=Err.OK)]
        assert leader.log_bytes <= max_raft_state + 200
    assert leader.storage.snapshot_metadata().index > 0
    c.cut = set()
    c.until(lambda: c.replicas[3].applied_index == leader.applied_index)
    assert c.replicas[3].machine.scan() == leader.machine.scan()
    assert c.replicas[3].storage.snapshot_metadata().index > 0


def test_a_restarted_replica_rebuilds_its_state_from_snapshot_and_log() -> None:
    c = Cluster(max_raft_state=400)
    leader = c.elect(1)
    for n in range(60):
        leader.propose(put(b"k%d" % n, b"v", n + 1), Outcome())
        c.settle()
    storage = c.replicas[2].storage
    assert isinstance(storage, MemoryStorage)
    restarted = c.start(2, storage.copy())
    c.until(lambda: restarted.applied_index == leader.applied_index)
    assert restarted.machine.scan() == leader.machine.scan()


class FlakyStorage(MemoryStorage):
    """Refuses every save while ``full`` is set, as a full disk does."""

    full = False

    def save(
        self, hard_state: HardState | None, entries: Sequence[Entry], *, sync: bool = True
    ) -> None:
        if self.full:
            raise StorageError("no space left on device")
        super().save(hard_state, entries, sync=sync)


def test_a_full_disk_stalls_the_replica_and_loses_nothing_once_space_is_back() -> None:
    c = Cluster()
    flaky = FlakyStorage(c.ids)
    leader = c.start(1, flaky)
    c.elect(1)
    first = Outcome()
    leader.propose(put(b"k", b"1", 1), first)
    flaky.full = True
    with pytest.raises(StorageError):
        leader.handle_ready(c.queue.extend)
    assert leader.storage_failed
    assert c.queue == []  # nothing of the unpersisted Ready was sent
    refused = Outcome()
    leader.propose(put(b"k", b"2", 2), refused)
    assert refused.errors == [Err.STORAGE_UNAVAILABLE]
    flaky.full = False
    c.settle()
    assert not leader.storage_failed
    assert first.values == [Result(err=Err.OK)]
    assert all(r.machine.get(b"k") == b"1" for r in c.replicas.values())


def test_only_a_leader_that_already_led_sends_before_its_sync() -> None:
    """Thesis 10.2.1: a leader may replicate entries while its own disk write runs; a node
    whose term, vote or role changes in the Ready must not (its vote requests speak for a term
    and vote that are not durable yet). begin_ready sends what the core lets leave at once,
    finish_ready the rest, once storage is synced."""
    storage = MemoryStorage((1, 2, 3))
    node = RawNode(Config(id=1, voters=(1, 2, 3), pre_vote=False), storage, random.Random(1))
    replica = Replica(node, storage, KVStateMachine(random.Random(1)))
    early: list[bool] = []

    def cycle() -> list[Message]:
        before: list[Message] = []
        after: list[Message] = []
        assert replica.begin_ready(before.extend, sync=False) is not None
        storage.sync()
        replica.finish_ready(after.extend)
        assert not (before and after)
        early.append(bool(before))
        return before + after

    replica.campaign()
    for request in cycle():  # the vote requests of a new term
        replica.step([Message(type=MSG_VOTE_RESPONSE, sender=request.to, to=1, term=request.term)])
    for append in cycle():  # elected (the role changed in this Ready): the no-op goes out
        reply = Message(type=MSG_APPEND_RESPONSE, sender=append.to, to=1, term=append.term)
        reply.index = append.index + len(append.entries)
        replica.step([reply])
    replica.propose(put(b"k", b"v", 1), Outcome())
    assert any(m.type == MSG_APPEND for m in cycle())
    assert early == [False, False, True]


def test_committed_entries_are_answered_while_the_sync_of_their_ready_runs() -> None:
    """A leader's Ready holding a new write B and the commit of an earlier write A answers A in
    begin_ready, before this Ready's sync (the core hands out only entries a majority holds
    durably), while B waits for this sync and the followers' acknowledgements."""
    storage = MemoryStorage((1, 2, 3))
    node = RawNode(Config(id=1, voters=(1, 2, 3), pre_vote=False), storage, random.Random(1))
    replica = Replica(node, storage, KVStateMachine(random.Random(1)))

    def acknowledge(messages: list[Message]) -> None:
        for m in messages:
            if m.type == MSG_VOTE:
                replica.step([Message(type=MSG_VOTE_RESPONSE, sender=m.to, to=1, term=m.term)])
            elif m.type == MSG_APPEND:
                reply = Message(type=MSG_APPEND_RESPONSE, sender=m.to, to=1, term=m.term)
                reply.index = m.index + len(m.entries)
                replica.step([reply])

    replica.campaign()
    while replica.handle_ready(acknowledge):
        pass
    a, b = Outcome(), Outcome()
    replica.propose(put(b"a", b"1", 1), a)
    assert replica.handle_ready(acknowledge)  # A is durable here and on both followers
    replica.propose(put(b"b", b"2", 2), b)
    rd = replica.begin_ready(acknowledge, sync=False)
    assert rd is not None and rd.entries and rd.committed_entries
    assert a.values == [Result(err=Err.OK)] and not b.done
    storage.sync()
    replica.finish_ready(acknowledge)
    assert not b.done  # committed by the followers, B is handed out by the next Ready
    while replica.handle_ready(acknowledge):
        pass
    assert b.values == [Result(err=Err.OK)]


def test_a_command_too_large_for_one_raft_message_frame_is_refused_before_the_log() -> None:
    """Issue 14, bug 5: an entry travels alone in a MSG_APPEND when it is larger than
    max_msg_bytes, so a command that fits a client's 16 MiB frame could make an append that
    fits no frame, and never reach a follower (every retry fails the same way). The replica
    refuses a command over 8 MiB as a bad request; one under it replicates."""
    c = Cluster()
    leader = c.elect()
    last = leader.status().last_index
    refused, fits = Outcome(), Outcome()
    leader.propose(put(b"k", b"x" * (DEFAULT_MAX_FRAME_SIZE - 200), 1), refused)
    assert refused.errors == ["ErrBadRequest"]
    assert leader.status().last_index == last  # nothing reached the log
    leader.propose(put(b"k", b"x" * ((8 << 20) - 100), 2), fits)
    c.settle()
    assert fits.values == [Result(err=Err.OK)]
