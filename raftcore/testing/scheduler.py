"""A discrete-event scheduler in virtual time.

Theory of operation
-------------------
Time is an integer count of virtual microseconds that only moves when the scheduler runs the next
event: nothing here reads a clock or sleeps, so a simulated second costs only the callbacks that
fall inside it. Events live in a heap of ``(time, seq, timer)``; ``seq`` grows with every
scheduling call, so events due at the same instant run in the order they were scheduled. That, and
never iterating a set or dict whose order depends on hashing, makes a run a pure function of its
seed. Cancelled timers stay in the heap and are skipped when popped (cheaper than re-heaping).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

__all__ = ["MS", "SECOND", "Scheduler", "SchedulingError", "Timer"]

MS = 1_000
"""One virtual millisecond, in the scheduler's unit (microseconds)."""

SECOND = 1_000_000
"""One virtual second, in the scheduler's unit (microseconds)."""


class SchedulingError(ValueError):
    """An event was scheduled in the past or with a negative delay."""


class Timer:
    """A handle on one scheduled callback; :meth:`cancel` stops it from running."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: int, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Prevent the callback from running; harmless if it already ran or was cancelled."""
        self.cancelled = True


class Scheduler:
    """Runs callbacks in virtual-time order; see the module docstring for the ordering rule."""

    def __init__(self) -> None:
        self._now = 0
        self._seq = 0
        self._heap: list[tuple[int, int, Timer]] = []

    @property
    def now(self) -> int:
        """The current virtual time in microseconds (starts at 0, never decreases)."""
        return self._now

    def call_at(self, when: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` at virtual time ``when`` (not before ``now``); returns its timer."""
        if when < self._now:
            raise SchedulingError(f"cannot schedule at {when}: it is already {self._now}")
        timer = Timer(when, callback)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        return timer

    def call_later(self, delay: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` ``delay`` microseconds from now (``delay >= 0``); returns its timer."""
        if delay < 0:
            raise SchedulingError(f"negative delay {delay}")
        return self.call_at(self._now + delay, callback)

    def run_next(self, deadline: int) -> bool:
        """Run the next live event due at or before ``deadline``.

        Returns False (and leaves ``now`` unchanged) when there is none. Exceptions raised by the
        callback propagate to the caller: an invariant violation stops the run where it happened.
        """
        heap = self._heap
        while heap:
            when, _, timer = heap[0]
            if when > deadline:
                return False
            heapq.heappop(heap)
            if timer.cancelled:
                continue
            self._now = when
            timer.cancelled = True  # a timer runs at most once
            timer.callback()
            return True
        return False

    def run_until(self, deadline: int) -> None:
        """Run every event due at or before ``deadline``, then set ``now`` to ``deadline``."""
        if deadline < self._now:
            raise SchedulingError(f"cannot run until {deadline}: it is already {self._now}")
        while self.run_next(deadline):
            pass
        self._now = deadline

    def run_for(self, duration: int) -> None:
        """Advance virtual time by ``duration`` microseconds, running what falls due."""
        self.run_until(self._now + duration)

    def run_until_true(self, predicate: Callable[[], bool], deadline: int) -> bool:
        """Run events until ``predicate()`` holds (checked first and after each event).

        Returns True as soon as it holds; False if ``deadline`` passes first, with ``now`` then set
        to ``deadline``.
        """
        if predicate():
            return True
        while self.run_next(deadline):
            if predicate():
                return True
        self._now = max(self._now, deadline)
        return False
