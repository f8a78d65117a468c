"""Driver processes in virtual time that can wait for an event, not only for a delay.

Theory of operation
-------------------
A process is a generator run by a :class:`~raftcore.testing.scheduler.Scheduler`. Each value it
yields says what to wait for: an ``int`` is a sleep of that many virtual microseconds, a
:class:`Signal` is an event some callback will fire (a reply
to a ``Port.call``, another process finishing). The process is resumed with ``None`` after a
sleep and with the signal's value after a signal, so ``reply = yield signal`` reads naturally and
helpers compose with ``yield from``.

Resumptions always go through the scheduler (never a direct call from the callback that fired the
signal), so a process never runs inside a network handler or another process, and events due at
the same instant keep the scheduler's FIFO order: a run stays a pure function of its seed.
An exception raised by a process propagates out of the scheduler, stopping the run where it
happened, as an invariant violation does.

The Raft scenarios' drivers only sleep; the KV scenarios' also wait for RPC replies. Both run
through ``spawn`` / ``run`` of :class:`~raftcore.testing.runtime.SimClusterBase`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from raftcore.testing.scheduler import Scheduler

__all__ = ["Proc", "Process", "Signal", "spawn", "wait_all"]

T = TypeVar("T")


class Signal(Generic[T]):
    """A one-shot event carrying a value; processes wait for it by yielding it."""

    __slots__ = ("_callbacks", "done", "value")

    def __init__(self) -> None:
        self.done = False
        self.value: T | None = None
        self._callbacks: list[Callable[[T], None]] = []

    def fire(self, value: T) -> None:
        """Set the value and wake every waiter; firing twice is a programming error."""
        if self.done:
            raise RuntimeError("a Signal fires only once")
        self.done = True
        self.value = value
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(value)

    def subscribe(self, callback: Callable[[T], None]) -> None:
        """Run ``callback(value)`` when the signal fires (at once if it already has)."""
        if self.done:
            callback(self.value)  # type: ignore[arg-type]  # done implies the value was set
        else:
            self._callbacks.append(callback)


Proc = Generator[int | Signal[Any], Any, T]
"""A driver coroutine returning ``T``: yields microseconds to sleep or a :class:`Signal`."""


class Process(Generic[T]):
    """A spawned process; ``finished`` fires with its return value."""

    def __init__(self, gen: Proc[T]) -> None:
        self.gen = gen
        self.finished: Signal[T] = Signal()

    @property
    def done(self) -> bool:
        """Whether the process has returned."""
        return self.finished.done

    @property
    def result(self) -> T:
        """The return value; raises RuntimeError while the process still runs."""
        if not self.finished.done:
            raise RuntimeError("the process has not finished")
        return self.finished.value  # type: ignore[return-value]  # set when done


def spawn(scheduler: Scheduler, gen: Proc[T]) -> Process[T]:
    """Start ``gen`` at the current instant (after what is already due now)."""
    proc = Process(gen)

    def resume_soon(value: object) -> None:
        scheduler.call_later(0, lambda: resume(value))

    def resume(value: object) -> None:
        try:
            wait = proc.gen.send(value)
        except StopIteration as stop:
            proc.finished.fire(stop.value)
            return
        if isinstance(wait, Signal):
            wait.subscribe(resume_soon)
        else:
            scheduler.call_later(wait, lambda: resume(None))

    scheduler.call_later(0, lambda: resume(None))
    return proc


def wait_all(procs: list[Process[Any]]) -> Proc[None]:
    """A process step that waits until every one of ``procs`` has finished."""
    for proc in procs:
        if not proc.done:
            yield proc.finished
