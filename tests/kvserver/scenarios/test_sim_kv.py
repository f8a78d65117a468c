"""The simulated KV cluster's own parts: wire encoding, processes, checks, determinism, purity."""

from __future__ import annotations

import pytest

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.testing.cluster import KVCluster, KVClusterOptions
from kvserver.testing.wire import (
    GetRequest,
    WireError,
    decode_reply,
    decode_request,
    encode_get,
    encode_reply,
    encode_write,
)
from kvserver.testing.workload import LoadSpec, check_append_order, check_appends, run_load
from lincheck import Operation, OpKind, Status, dumps_operation
from raftcore.testing.cluster import ClusterOptions
from raftcore.testing.process import Proc, Signal, spawn, wait_all
from raftcore.testing.scheduler import MS, Scheduler

# -- wire ---------------------------------------------------------------------------------------


def test_requests_and_replies_round_trip() -> None:
    command = Command(client_id=b"c", request_id=3, op=Op.OP_APPEND, key=b"k", value=b"\x00v")
    assert decode_request(encode_write(command)) == command
    assert decode_request(encode_get(b"\xffkey")) == GetRequest(b"\xffkey")
    reply = decode_reply(encode_reply(7, Result(err="OK", value=b"v")))
    assert (reply.leader_hint, reply.result) == (7, Result(err="OK", value=b"v"))


@pytest.mark.parametrize("data", [b"", b"X", b"Wnot a command\xff\xff"])
def test_a_malformed_request_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_request(data)


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x01", b"\x00\x00\x00\x01\xff\xff"])
def test_a_malformed_reply_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_reply(data)


def test_a_server_answers_garbage_with_a_typed_error() -> None:
    cluster = KVCluster(1, seed=3)
    clerk = cluster.make_clerk()
    answers: list[bytes | None] = []
    clerk.port.call(1, b"?garbage", answers.append, 100 * MS)
    cluster.sleep(50 * MS)
    assert len(answers) == 1 and answers[0] is not None
    assert decode_reply(answers[0]).result.err == Err.BAD_REQUEST


# -- processes ----------------------------------------------------------------------------------


def test_processes_sleep_wait_for_signals_and_return() -> None:
    scheduler = Scheduler()
    signal: Signal[str] = Signal()
    trace: list[tuple[int, str]] = []

    def waiter() -> Proc[str]:
        value = yield signal
        trace.append((scheduler.now, f"got {value}"))
        return value

    def firer() -> Proc[None]:
        yield 5 * MS
        trace.append((scheduler.now, "fire"))
        signal.fire("x")

    w = spawn(scheduler, waiter())
    spawn(scheduler, firer())
    scheduler.run_for(10 * MS)
    assert trace == [(5 * MS, "fire"), (5 * MS, "got x")]
    assert w.done and w.result == "x"

    def joiner() -> Proc[int]:
        yield from wait_all([w])
        return scheduler.now

    late = spawn(scheduler, joiner())  # waiting for a finished process does not block
    scheduler.run_for(1)
    assert late.result == 10 * MS


def test_a_signal_fires_once_and_a_result_needs_a_finished_process() -> None:
    signal: Signal[int] = Signal()
    signal.fire(1)
    with pytest.raises(RuntimeError):
        signal.fire(2)
    seen: list[int] = []
    signal.subscribe(seen.append)
    assert seen == [1]
    scheduler = Scheduler()

    def forever() -> Proc[None]:
        yield Signal()

    proc = spawn(scheduler, forever())
    scheduler.run_for(MS)
    with pytest.raises(RuntimeError):
        _ = proc.result


# -- checks -------------------------------------------------------------------------------------


def test_check_appends_finds_missing_duplicate_and_reordered_values() -> None:
    assert check_appends(1, b"x 1 0 yx 1 1 y", 2) == []
    assert "missing" in check_appends(1, b"x 1 0 y", 2)[0]
    assert "duplicate" in check_appends(1, b"x 1 0 yx 1 0 y", 1)[0]
    assert "out of order" in check_appends(1, b"x 1 1 yx 1 0 y", 2)[0]


def _append(value: str, call: int, ret: int | None, status: Status = Status.OK) -> Operation:
    return Operation(0, OpKind.APPEND, "k", value, None, call, ret, status)


def test_check_append_order_is_linearizability_of_appends_read_once() -> None:
    a, b = _append("a;", 0, 10), _append("b;", 20, 30)
    concurrent = _append("c;", 5, 25)
    lost = _append("d;", 0, None, Status.UNKNOWN)
    assert check_append_order([a, b, concurrent, lost], "k", "a;c;b;") == []
    assert check_append_order([a, b, concurrent, lost], "k", "c;a;d;b;") == []
    assert "returned before" in check_append_order([a, b], "k", "b;a;")[0]
    assert "missing or repeated" in check_append_order([a, b], "k", "a;")[0]
    assert "not made of appends" in check_append_order([a, b], "k", "a;a;b;")[0]


# -- the cluster --------------------------------------------------------------------------------


def test_options_refuse_what_the_replica_cannot_do() -> None:
    with pytest.raises(ValueError, match="snapshot_every"):
        KVClusterOptions(raft=ClusterOptions(snapshot_every=10))
    with pytest.raises(ValueError, match="max_raft_state"):
        KVClusterOptions(max_raft_state=0)
    with pytest.raises(ValueError, match="at least one node"):
        KVCluster(0, seed=1)


def _history_lines(seed: int) -> list[str]:
    spec = LoadSpec(clients=3, unreliable=True, crash=True, partitions=True, rounds=1, round_ms=500)
    cluster = KVCluster(3, seed, KVClusterOptions(max_raft_state=500), reliable=False)
    cluster.run(run_load(cluster, spec))
    return [dumps_operation(op) for op in cluster.recorder.history()]


def test_a_seed_replays_the_same_history() -> None:
    first = _history_lines(11)
    assert len(first) > 20
    assert _history_lines(11) == first
    assert _history_lines(12) != first


def test_history_stamps_follow_event_order() -> None:
    """A client's next call is stamped after its previous return, even at one virtual instant."""
    cluster = KVCluster(3, seed=2)
    clerk = cluster.make_clerk()

    def two_ops() -> Proc[None]:
        yield from clerk.put(b"k", b"1")
        yield from clerk.get(b"k")

    cluster.run(two_ops())
    put, get = cluster.recorder.history()
    assert put.ret is not None and put.ret < get.call
