"""Exactly-once sessions: retries answered from the cache, reads never involved, idle expiry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Result
from kvserver.sessions import Sessions


def cmd(client: bytes, rid: int, acked_below: int = 0, now_ms: int = 0) -> Command:
    return Command(client_id=client, request_id=rid, acked_below=acked_below, now_ms=now_ms)


def test_new_request_is_not_cached() -> None:
    assert Sessions().lookup(cmd(b"a", 1)) is None


def test_retry_gets_the_first_result() -> None:
    s = Sessions()
    s.record(cmd(b"a", 1), Result(err="OK", value=b"first"))
    assert s.lookup(cmd(b"a", 1)) == Result(err="OK", value=b"first")


def test_clients_are_independent() -> None:
    s = Sessions()
    s.record(cmd(b"a", 1), Result(err="OK"))
    assert s.lookup(cmd(b"b", 1)) is None


def test_legacy_client_mark_is_its_request_id() -> None:
    """The original clerk has one request outstanding: request 2 means request 1 was answered."""
    s = Sessions()
    s.record(cmd(b"a", 1), Result(err="OK"))
    s.record(cmd(b"a", 2), Result(err="OK"))
    assert s.lookup(cmd(b"a", 1)) == Result(err=Err.STALE_REQUEST)
    assert s.lookup(cmd(b"a", 2)) == Result(err="OK")


def test_pipelined_client_keeps_unacknowledged_replies() -> None:
    s = Sessions()
    s.record(cmd(b"a", 1, acked_below=1), Result(err="OK", value=b"1"))
    s.record(cmd(b"a", 2, acked_below=1), Result(err="OK", value=b"2"))
    s.record(cmd(b"a", 3, acked_below=1), Result(err="OK", value=b"3"))
    assert s.lookup(cmd(b"a", 1)) == Result(err="OK", value=b"1")
    s.record(cmd(b"a", 4, acked_below=3), Result(err="OK", value=b"4"))
    assert s.lookup(cmd(b"a", 2)) == Result(err=Err.STALE_REQUEST)
    assert s.lookup(cmd(b"a", 3)) == Result(err="OK", value=b"3")


def test_a_late_retry_does_not_move_the_mark_back() -> None:
    s = Sessions()
    s.record(cmd(b"a", 5, acked_below=5), Result(err="OK"))
    s.record(cmd(b"a", 6, acked_below=2), Result(err="OK"))
    assert s.lookup(cmd(b"a", 4)) == Result(err=Err.STALE_REQUEST)


def test_idle_sessions_expire_and_active_ones_stay() -> None:
    s = Sessions(max_idle_ms=1000)
    s.advance_clock(0)
    s.record(cmd(b"old", 1), Result(err="OK"))
    s.advance_clock(600)
    s.record(cmd(b"new", 1), Result(err="OK"))
    s.advance_clock(1200)
    assert len(s) == 1
    assert s.lookup(cmd(b"old", 1)) is None
    assert s.lookup(cmd(b"new", 1)) == Result(err="OK")


def test_clock_never_goes_back() -> None:
    s = Sessions(max_idle_ms=1000)
    s.advance_clock(900)
    s.advance_clock(10)
    assert s.clock_ms == 900
    s.advance_clock(110)  # steps count from the last stamp, not from the clock
    assert s.clock_ms == 1000


def test_touching_a_session_keeps_it_alive() -> None:
    s = Sessions(max_idle_ms=1000)
    s.record(cmd(b"a", 1), Result(err="OK"))
    s.record(cmd(b"b", 1), Result(err="OK"))
    s.advance_clock(900)
    s.record(cmd(b"a", 2), Result(err="OK"))
    s.advance_clock(1500)
    assert s.lookup(cmd(b"a", 2)) is not None
    assert s.lookup(cmd(b"b", 1)) is None


@given(
    st.lists(
        st.tuples(st.sampled_from([b"a", b"b", b"c"]), st.integers(1, 20), st.integers(0, 5000)),
        max_size=60,
    )
)
def test_proto_round_trip_preserves_answers_and_expiry_order(
    ops: list[tuple[bytes, int, int]],
) -> None:
    s = Sessions(max_idle_ms=2000)
    for n, (client, rid, now) in enumerate(ops):
        s.advance_clock(now)
        command = cmd(client, rid, acked_below=max(1, rid - 2))
        if s.lookup(command) is None:
            s.record(command, Result(err="OK", value=str(n).encode()))
    restored = Sessions.from_proto(s.to_proto(), max_idle_ms=2000)
    assert restored.to_proto() == s.to_proto()
    for client in (b"a", b"b", b"c"):
        for rid in range(1, 21):
            assert restored.lookup(cmd(client, rid)) == s.lookup(cmd(client, rid))
    for later in (s.clock_ms + 500, s.clock_ms + 3000):
        s.advance_clock(later)
        restored.advance_clock(later)
        assert len(restored) == len(s)
