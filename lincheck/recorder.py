"""Recording a history while clients run.

:class:`HistoryRecorder` is shared by all clients of a test. It is thread-safe (one lock, held
only to touch its tables) and never blocks on I/O or awaits, so asyncio tasks can call it
directly from the event loop. Timestamps come from one monotonic nanosecond clock, injectable so
simulated-time tests can record virtual time; ``at=`` overrides the clock for a single event.

Two ways to record:

- ``handle = rec.call(...)`` before sending, ``rec.ret(handle, output)`` after the reply (or
  ``status=Status.FAIL`` / ``Status.UNKNOWN``);
- ``with rec.operation(...) as pending: pending.output = await clerk.get(key)``. Leaving the
  block normally records ``ok``; leaving it by an exception (including cancellation) records
  ``unknown`` unless ``pending.fail()`` said the operation certainly had no effect.

An operation called but never returned is reported as ``unknown`` by :meth:`history`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lincheck.history import ClientId, HistoryError, Json, Operation, OpKind, Status, write_history


class PendingOperation:
    """The handle given by :meth:`HistoryRecorder.operation`: set ``output`` or call ``fail()``."""

    def __init__(self) -> None:
        self.output: Json = None
        self.status = Status.OK

    def fail(self) -> None:
        """Declare that the operation certainly had no effect (recorded as ``fail``)."""
        self.status = Status.FAIL

    def unknown(self) -> None:
        """Declare that the outcome is unknown (recorded as ``unknown``)."""
        self.status = Status.UNKNOWN


class HistoryRecorder:
    """Collects :class:`Operation` records from concurrent clients (threads or asyncio tasks)."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[int, Operation] = {}
        self._done: dict[int, Operation] = {}
        self._next_handle = 0

    def call(
        self,
        client_id: ClientId,
        op: OpKind | str,
        key: str,
        value: Json = None,
        *,
        at: int | None = None,
    ) -> int:
        """Record the invocation of an operation; returns the handle for :meth:`ret`.

        Raises :class:`HistoryError` if the operation or its value is malformed.
        """
        try:
            kind = OpKind(op)
        except ValueError:
            raise HistoryError(f"unknown op {op!r}") from None
        timestamp = self._clock() if at is None else at
        # Validated now, as an operation whose outcome is not yet known.
        record = Operation(client_id, kind, key, value, None, timestamp, None, Status.UNKNOWN)
        with self._lock:
            handle = self._next_handle
            self._next_handle += 1
            self._pending[handle] = record
        return handle

    def ret(
        self,
        handle: int,
        output: Json = None,
        *,
        status: Status | str = Status.OK,
        at: int | None = None,
    ) -> Operation:
        """Record the end of the operation ``handle`` and return the finished record.

        Raises :class:`HistoryError` for an unknown or already finished handle, or for an
        output that does not fit the operation; the operation then stays pending.
        """
        try:
            outcome = Status(status)
        except ValueError:
            raise HistoryError(f"unknown status {status!r} (known: ok, fail, unknown)") from None
        timestamp = self._clock() if at is None else at
        with self._lock:
            pending = self._pending.get(handle)
            if pending is None:
                raise HistoryError(f"no pending operation with handle {handle}")
            record = Operation(
                pending.client_id,
                pending.op,
                pending.key,
                pending.value,
                output,
                pending.call,
                timestamp,
                outcome,
            )
            del self._pending[handle]
            self._done[handle] = record
        return record

    @contextmanager
    def operation(
        self, client_id: ClientId, op: OpKind | str, key: str, value: Json = None
    ) -> Iterator[PendingOperation]:
        """Record the operation run inside the ``with`` block (see the module docstring)."""
        handle = self.call(client_id, op, key, value)
        pending = PendingOperation()
        try:
            yield pending
        except BaseException:
            status = Status.FAIL if pending.status is Status.FAIL else Status.UNKNOWN
            self.ret(handle, status=status)
            raise
        self.ret(handle, pending.output, status=pending.status)

    def history(self, *, include_pending: bool = True) -> list[Operation]:
        """All records in invocation order; pending ones appear as ``unknown`` if included."""
        with self._lock:
            records = dict(self._done)
            if include_pending:
                records.update(self._pending)
        return [records[handle] for handle in sorted(records)]

    def write(self, path: str | Path, *, include_pending: bool = True) -> None:
        """Write :meth:`history` to ``path`` as JSON lines."""
        write_history(path, self.history(include_pending=include_pending))
