"""The virtual-time scheduler: ordering, cancellation, bounds."""

from __future__ import annotations

from functools import partial

import pytest

from raftcore.testing.scheduler import MS, Scheduler, SchedulingError


def test_events_run_in_time_then_scheduling_order() -> None:
    sched = Scheduler()
    seen: list[str] = []
    sched.call_at(20, lambda: seen.append("b"))
    sched.call_at(10, lambda: seen.append("a"))
    sched.call_at(20, lambda: seen.append("c"))
    sched.run_until(100)
    assert seen == ["a", "b", "c"]
    assert sched.now == 100


def test_run_until_stops_at_deadline_and_keeps_later_events() -> None:
    sched = Scheduler()
    seen: list[int] = []
    sched.call_at(5 * MS, lambda: seen.append(sched.now))
    sched.call_at(15 * MS, lambda: seen.append(sched.now))
    sched.run_for(10 * MS)
    assert seen == [5 * MS]
    assert sched.now == 10 * MS
    sched.run_for(10 * MS)
    assert seen == [5 * MS, 15 * MS]


def test_cancelled_timer_never_runs() -> None:
    sched = Scheduler()
    seen: list[int] = []
    timer = sched.call_later(5, lambda: seen.append(1))
    timer.cancel()
    sched.run_for(10)
    assert seen == []


def test_callbacks_may_schedule_at_the_current_instant() -> None:
    sched = Scheduler()
    seen: list[str] = []

    def first() -> None:
        seen.append("first")
        sched.call_later(0, lambda: seen.append("same instant"))

    sched.call_at(3, first)
    sched.call_at(3, lambda: seen.append("already queued"))
    sched.run_until(3)
    assert seen == ["first", "already queued", "same instant"]


def test_run_until_true_stops_when_predicate_holds() -> None:
    sched = Scheduler()
    hits: list[int] = []
    for t in (1, 2, 3, 4):
        sched.call_at(t, partial(hits.append, t))
    assert sched.run_until_true(lambda: len(hits) == 2, deadline=100)
    assert sched.now == 2
    assert not sched.run_until_true(lambda: len(hits) == 10, deadline=50)
    assert sched.now == 50


def test_scheduling_in_the_past_is_rejected() -> None:
    sched = Scheduler()
    sched.run_for(10)
    with pytest.raises(SchedulingError):
        sched.call_at(5, lambda: None)
    with pytest.raises(SchedulingError):
        sched.call_later(-1, lambda: None)
    with pytest.raises(SchedulingError):
        sched.run_until(5)


def test_exceptions_propagate_from_callbacks() -> None:
    sched = Scheduler()

    def boom() -> None:
        raise RuntimeError("boom")

    sched.call_at(1, boom)
    with pytest.raises(RuntimeError, match="boom"):
        sched.run_for(5)
    assert sched.now == 1
