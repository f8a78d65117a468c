"""Session expiry under clock jumps: a leader's wall clock an hour ahead must not make a retried
write execute twice, and a session that really expired refuses a retry instead of re-executing.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.sessions import DEFAULT_MAX_CLOCK_STEP_MS, DEFAULT_MAX_IDLE_MS, Sessions
from kvserver.state_machine import KVStateMachine

HOUR_MS = 3_600_000
T0 = 1_764_000_000_000  # a wall-clock time in ms, as the leaders stamp it


def append(client: bytes, rid: int, acked_below: int, now_ms: int, value: bytes = b"a") -> bytes:
    return Command(
        client_id=client,
        request_id=rid,
        acked_below=acked_below,
        now_ms=now_ms,
        op=Op.OP_APPEND,
        key=b"k",
        value=value,
    ).SerializeToString()


def machine(**kw: int) -> KVStateMachine:
    return KVStateMachine(random.Random(3), **kw)


def test_a_retry_through_a_leader_an_hour_ahead_is_answered_from_the_cache() -> None:
    """Issue 14, bug 3: the append was applied at T0, its reply lost; the clerk retries it (same
    RequestId) through a new leader whose wall clock is an hour ahead. Before the fix the clock
    jump expired the session first and the append ran again: ``aa``."""
    sm = machine()
    assert sm.apply(append(b"c", 1, 1, T0)) == Result(err=Err.OK)
    retry = append(b"c", 1, 1, T0 + HOUR_MS + 1)
    assert sm.apply(retry) == Result(err=Err.OK)
    assert sm.get(b"k") == b"a"


def test_a_legacy_retry_through_a_leader_an_hour_ahead_is_answered_from_the_cache() -> None:
    """The C++ clerk (AckedBelow 0) is protected by the clock bound alone."""
    sm = machine()
    sm.apply(append(b"legacy", 3, 0, T0))
    assert sm.apply(append(b"legacy", 3, 0, T0 + 10 * HOUR_MS)) == Result(err=Err.OK)
    assert sm.get(b"k") == b"a"


def test_a_clock_jump_back_and_forth_moves_the_session_clock_by_at_most_the_bound() -> None:
    s = Sessions()
    s.advance_clock(T0)
    start = s.clock_ms
    s.advance_clock(T0 + HOUR_MS)  # one leader an hour ahead
    s.advance_clock(T0 + 10)  # the next one right again
    s.advance_clock(T0 + HOUR_MS + 20)  # and so on
    assert s.clock_ms - start == 2 * DEFAULT_MAX_CLOCK_STEP_MS  # two jumps ahead, one back
    s.advance_clock(T0 + HOUR_MS + 520)  # ordinary steps count in full
    assert s.clock_ms - start == 2 * DEFAULT_MAX_CLOCK_STEP_MS + 500


@given(st.lists(st.integers(0, 100 * HOUR_MS), min_size=1, max_size=50))
def test_the_session_clock_gains_at_most_the_bound_per_entry(stamps: list[int]) -> None:
    s = Sessions()
    before = s.clock_ms
    for stamp in stamps:
        previous = s.clock_ms
        s.advance_clock(stamp)
        assert previous <= s.clock_ms <= previous + DEFAULT_MAX_CLOCK_STEP_MS
    assert s.clock_ms - before <= len(stamps) * DEFAULT_MAX_CLOCK_STEP_MS


def test_steady_time_expires_idle_sessions() -> None:
    """Entries stamped close together move the clock in full: an idle session still expires."""
    sm = machine(session_max_idle_ms=10_000)
    sm.apply(append(b"idle", 1, 1, T0))
    for n in range(1, 12):  # another client writes once a second for 11 s
        sm.apply(append(b"busy", n, n, T0 + 1000 * n, b"b"))
    assert b"idle" not in {s.client_id for s in sm.sessions.to_proto().sessions}


def test_a_retry_after_real_expiry_is_refused_not_executed() -> None:
    """The client had history (AckedBelow 5: requests 1-4 answered), its session expired, and its
    retry of request 5 comes back: executing it could run it twice, so it is refused."""
    sm = machine(session_max_idle_ms=10_000)
    for rid in range(1, 6):
        sm.apply(append(b"c", rid, rid, T0 + rid))
    for n in range(1, 13):
        sm.apply(append(b"busy", n, n, T0 + 1000 * n, b"b"))
    before = sm.get(b"k")
    assert sm.apply(append(b"c", 5, 5, T0 + 13_000)) == Result(err=Err.SESSION_EXPIRED)
    assert sm.get(b"k") == before
    # Refused, not remembered: the retry is refused again the same way.
    assert sm.apply(append(b"c", 5, 5, T0 + 13_001)) == Result(err=Err.SESSION_EXPIRED)
    assert sm.get(b"k") == before


def test_new_sessions_are_accepted() -> None:
    """A new clerk's first write (RequestId 1, AckedBelow 1), a pipelined new clerk's second one
    arriving first (AckedBelow 1), and a legacy client (AckedBelow 0) with any RequestId (its
    Gets use ids too) start a session."""
    sm = machine()
    assert sm.apply(append(b"new", 1, 1, T0)) == Result(err=Err.OK)
    assert sm.apply(append(b"pipelined", 2, 1, T0)) == Result(err=Err.OK)
    assert sm.apply(append(b"legacy", 1, 0, T0)) == Result(err=Err.OK)
    assert sm.apply(append(b"legacy-after-a-get", 2, 0, T0)) == Result(err=Err.OK)
    assert sm.get(b"k") == b"aaaa"


def test_the_clock_survives_a_snapshot() -> None:
    s = Sessions()
    s.advance_clock(T0)
    s.advance_clock(T0 + 700)
    restored = Sessions.from_proto(s.to_proto())
    assert (restored.clock_ms, restored.last_stamp_ms) == (s.clock_ms, s.last_stamp_ms)
    restored.advance_clock(T0 + HOUR_MS)
    assert restored.clock_ms == s.clock_ms + DEFAULT_MAX_CLOCK_STEP_MS


def test_defaults_keep_the_bound_far_below_the_idle_age() -> None:
    assert DEFAULT_MAX_CLOCK_STEP_MS * 1000 <= DEFAULT_MAX_IDLE_MS


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # which client writes
            st.integers(0, 3),  # extra copies committed (lost replies, retries)
            st.integers(1, 40),  # entries between its copies
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 2**32),
)
def test_whatever_the_stamps_copies_within_the_retry_window_apply_once(
    writes: list[tuple[int, int, int]], seed: int
) -> None:
    """Every entry stamped by a leader whose wall clock is anywhere in a 100-hour range; each
    write committed up to four times, its copies spread over up to 120 entries: every append
    takes effect once (expiry needs 3 600 entries of maximal steps)."""
    rng = random.Random(seed)
    sm = machine()
    log: list[tuple[int, int, Command]] = []  # (position, tie-break, command)
    ids = [0, 0, 0]
    for n, (client, copies, gap) in enumerate(writes):
        ids[client] += 1
        rid = ids[client]
        for copy in range(copies + 1):
            command = Command(
                client_id=b"c%d" % client,
                request_id=rid,
                acked_below=rid,
                op=Op.OP_APPEND,
                key=b"k",
                value=b"<%d>" % n,
            )
            log.append((n * 10 + copy * gap, len(log), command))
    for _, _, command in sorted(log, key=lambda e: (e[0], e[1])):
        command.now_ms = T0 + rng.randrange(100 * HOUR_MS)
        sm.apply(command.SerializeToString())
    value = sm.get(b"k") or b""
    for n in range(len(writes)):
        assert value.count(b"<%d>" % n) <= 1
    # A client's first copy of each request comes before its next request's: none is refused.
    assert all(value.count(b"<%d>" % n) == 1 for n in range(len(writes)))
