"""Clerk: the blocking face of :class:`clerk.aio.AsyncClerk`, for scripts and threads.

The clerk runs its own event loop in one background thread for its whole life, and each call
hands its coroutine to that loop and waits. One long-lived loop keeps the connections (one per
server) and the leader cache across calls, which ``asyncio.run`` per call could not: it would
reconnect on every call and could not be used from code that already runs an event loop. Calls
may come from any number of threads at once; they run concurrently on the clerk's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from clerk.aio import AsyncClerk, Key
from clerk.connections import Servers
from clerk.results import ConditionalResult, StaleRead, StaleScan

__all__ = ["Clerk"]

T = TypeVar("T")


class Clerk:
    """A blocking client of one raftkv cluster; takes the options of :class:`AsyncClerk`.

    Use it as ``with Clerk(servers) as kv: kv.put("x", "1")``, or call :meth:`close` when done.
    Every method blocks until the operation's answer or its deadline, and raises what the
    matching :class:`AsyncClerk` method raises.
    """

    def __init__(self, servers: Servers, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="raftkv-clerk", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self._aclerk = self._run(_make(servers, options))
        except BaseException:
            self._stop_loop()
            raise

    @property
    def client_id(self) -> bytes:
        """This clerk's session id."""
        return self._aclerk.client_id

    @property
    def leader(self) -> int:
        """Node index of the server this clerk currently believes leads."""
        return self._aclerk.leader

    @property
    def servers(self) -> dict[int, tuple[str, int]]:
        """See :attr:`AsyncClerk.servers`."""
        return self._aclerk.servers

    def get(self, key: Key, *, lease: bool = False, timeout: float | None = None) -> bytes | None:
        """See :meth:`AsyncClerk.get`."""
        return self._run(self._aclerk.get(key, lease=lease, timeout=timeout))

    def scan(
        self,
        start: Key = b"",
        end: Key | None = None,
        limit: int | None = None,
        *,
        lease: bool = False,
        timeout: float | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """See :meth:`AsyncClerk.scan`."""
        return self._run(self._aclerk.scan(start, end, limit, lease=lease, timeout=timeout))

    def get_stale(
        self, key: Key, *, server: int | None = None, timeout: float | None = None
    ) -> StaleRead:
        """See :meth:`AsyncClerk.get_stale` (the value may be OUT OF DATE)."""
        return self._run(self._aclerk.get_stale(key, server=server, timeout=timeout))

    def scan_stale(
        self,
        start: Key = b"",
        end: Key | None = None,
        limit: int | None = None,
        *,
        server: int | None = None,
        timeout: float | None = None,
    ) -> StaleScan:
        """See :meth:`AsyncClerk.scan_stale` (the pairs may be OUT OF DATE)."""
        return self._run(self._aclerk.scan_stale(start, end, limit, server=server, timeout=timeout))

    def put(self, key: Key, value: Key, *, timeout: float | None = None) -> None:
        """See :meth:`AsyncClerk.put`."""
        self._run(self._aclerk.put(key, value, timeout=timeout))

    def append(self, key: Key, value: Key, *, timeout: float | None = None) -> None:
        """See :meth:`AsyncClerk.append`."""
        self._run(self._aclerk.append(key, value, timeout=timeout))

    def delete(self, key: Key, *, timeout: float | None = None) -> ConditionalResult:
        """See :meth:`AsyncClerk.delete`."""
        return self._run(self._aclerk.delete(key, timeout=timeout))

    def put_if_absent(
        self, key: Key, value: Key, *, timeout: float | None = None
    ) -> ConditionalResult:
        """See :meth:`AsyncClerk.put_if_absent`."""
        return self._run(self._aclerk.put_if_absent(key, value, timeout=timeout))

    def update(self, key: Key, value: Key, *, timeout: float | None = None) -> ConditionalResult:
        """See :meth:`AsyncClerk.update`."""
        return self._run(self._aclerk.update(key, value, timeout=timeout))

    def cas(
        self, key: Key, expected: Key | None, new: Key, *, timeout: float | None = None
    ) -> ConditionalResult:
        """See :meth:`AsyncClerk.cas`."""
        return self._run(self._aclerk.cas(key, expected, new, timeout=timeout))

    def close(self) -> None:
        """Close the connections and stop the clerk's thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._aclerk.close(), closing=True)
        finally:
            self._stop_loop()

    def __enter__(self) -> Clerk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T], *, closing: bool = False) -> T:
        if self._closed and not closing:
            coro.close()
            raise RuntimeError("the clerk is closed")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (e.g. KeyboardInterrupt): do not leave the operation running.
            future.cancel()
            raise

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _make(servers: Servers, options: dict[str, Any]) -> AsyncClerk:
    return AsyncClerk(servers, **options)
