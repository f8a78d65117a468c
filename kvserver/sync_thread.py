"""SyncThread: runs a node's fdatasyncs off its event loop, one at a time.

A ThreadPoolExecutor would do, but every submit pays for a work item, a concurrent Future, a lock
and the asyncio Future chained to it; the node submits one sync per Ready, so it uses this
thinner hand-off instead: a SimpleQueue (implemented in C) in, ``call_soon_threadsafe`` out.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable

__all__ = ["SyncThread"]

Done = Callable[[BaseException | None], None]


class SyncThread:
    """One daemon thread running submitted calls in order; each result is reported on the loop
    that submitted it. ``close()`` lets the calls already submitted finish, then ends it."""

    def __init__(self, name: str) -> None:
        self._requests: queue.SimpleQueue[
            tuple[Callable[[], None], asyncio.AbstractEventLoop, Done] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], None], done: Done) -> None:
        """Run ``call`` on the thread; then ``done(None)``, or ``done(error)`` if it raised, is
        called on the running loop of the caller."""
        self._requests.put((call, asyncio.get_running_loop(), done))

    def close(self) -> None:
        """Finish what was submitted and stop the thread (waits for it)."""
        self._requests.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            call, loop, done = request
            error: BaseException | None = None
            try:
                call()
            except BaseException as exc:  # reported to the loop, which decides what is fatal
                error = exc
            # RuntimeError: the loop closed meanwhile, and nobody is waiting for the answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(done, error)
