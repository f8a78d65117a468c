"""The session cache's lazy pruning: bounded by the requests in flight, invisible in lookups and
snapshots whenever it happens."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Result
from kvserver.sessions import Sessions


def cmd(client: bytes, rid: int, acked_below: int) -> Command:
    return Command(client_id=client, request_id=rid, acked_below=acked_below)


def test_a_pipelined_client_keeps_a_cache_bounded_by_its_window() -> None:
    s = Sessions()
    window = 64
    for rid in range(1, 10_001):
        s.record(cmd(b"a", rid, max(1, rid - window + 1)), Result(err="OK"))
    cached = s._clients[b"a"].replies
    assert window <= len(cached) <= 2 * window + 8
    assert s.lookup(cmd(b"a", 10_000 - window, 0)) == Result(err=Err.STALE_REQUEST)
    assert s.lookup(cmd(b"a", 10_000, 0)) == Result(err="OK")
    assert len(s.to_proto().sessions[0].replies) == window


def test_a_request_below_the_mark_is_stale_before_its_entry_is_pruned() -> None:
    s = Sessions()
    s.record(cmd(b"a", 1, 1), Result(err="OK", value=b"one"))
    s.record(cmd(b"a", 2, 2), Result(err="OK", value=b"two"))
    assert len(s._clients[b"a"].replies) == 2  # not pruned yet
    assert s.lookup(cmd(b"a", 1, 0)) == Result(err=Err.STALE_REQUEST)
    assert s.lookup(cmd(b"a", 2, 0)) == Result(err="OK", value=b"two")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    steps=st.integers(1, 400),
    restore_at=st.integers(0, 400),
)
def test_a_replica_restored_midway_answers_and_snapshots_like_one_that_was_not(
    seed: int, steps: int, restore_at: int
) -> None:
    """Pruning happens at different moments on a replica rebuilt from a snapshot; nothing that
    replica answers or saves may differ because of it."""
    rng = random.Random(seed)
    straight, restored = Sessions(), Sessions()
    next_rid = {b"a": 1, b"b": 1}
    for step in range(steps):
        if step == restore_at:
            restored = Sessions.from_proto(restored.to_proto())
        client = rng.choice([b"a", b"b"])
        rid = next_rid[client]
        next_rid[client] += 1
        command = cmd(client, rid, max(0, rid - rng.randrange(1, 20)))
        for s in (straight, restored):
            assert s.lookup(command) is None
            s.record(command, Result(err="OK", value=b"%d" % rid))
        probe = cmd(client, rng.randrange(1, rid + 1), 0)
        assert straight.lookup(probe) == restored.lookup(probe)
    assert straight.to_proto() == restored.to_proto()
