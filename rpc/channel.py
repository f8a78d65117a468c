"""RpcChannel: many concurrent calls to one peer over one long-lived connection.

Theory of operation. The channel connects lazily, on the first call, and again on the first
call after the connection is lost. Every call gets a fresh call id; its request frame is queued
and the queue is written once per loop iteration, so calls started together share one write.
The ``_ClientConnection`` protocol decodes framed responses and resolves the waiting call's
future by call id, so replies may come back in any order.

A call abandoned before its reply (cancelled through its controller, or its awaiting task
cancelled) sends a cancel frame so the server stops the work too.

Failures are never silent: a call whose deadline passes fails with RpcTimeoutError (the
deadline also travels in the request header so the server can drop the work); when the
connection is lost every pending call fails at once with RpcConnectionError; an error status
from the server becomes RpcRemoteError. ``reset()`` aborts the connection on the caller's
request (its unwritten bytes are dropped) and the next call reconnects. After a failed connect
attempt the channel waits a backoff (doubling, capped) before trying again and fails calls fast
meanwhile, so a dead peer costs callers nothing but an exception.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from typing import TypeVar, cast

from google.protobuf.message import DecodeError, Message

from rpc.codec import (
    DEFAULT_MAX_FRAME_SIZE,
    ResponseDecoder,
    encode_cancel,
    encode_request,
    request_prefix,
)
from rpc.controller import RpcController
from rpc.errors import (
    FrameError,
    RpcBadResponseError,
    RpcCancelledError,
    RpcConnectionError,
    RpcError,
    RpcRemoteError,
    RpcTimeoutError,
    Status,
)
from rpc.rpcheader_pb2 import RpcResponseHeader

_log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)

_Reply = tuple[RpcResponseHeader, bytes]

# deadline_ms is a uint32 on the wire; longer deadlines are sent as this (about 49 days).
_MAX_DEADLINE_MS = 2**32 - 1


class RpcChannel:
    """A client for every service one peer (``host``, ``port``) serves.

    Timeouts are in seconds; ``default_timeout`` applies to calls that give none (None: no
    deadline). ``connect_timeout`` bounds one connect attempt; after failed attempts the
    channel refuses calls for ``backoff_initial`` seconds, doubling up to ``backoff_max``.
    ``unacked_timeout`` (TCP_USER_TIMEOUT, where the platform has it) drops a connection whose
    sent bytes the peer's kernel has not acknowledged for that long: a silent partition then
    ends in a fresh connect once it heals, instead of waiting out TCP's retransmission backoff
    (seconds to minutes) on the old connection. None leaves the system's default.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        default_timeout: float | None = None,
        connect_timeout: float = 1.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        unacked_timeout: float | None = 2.0,
    ) -> None:
        self.host = host
        self.port = port
        self.default_timeout = default_timeout
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_frame_size = max_frame_size
        self.unacked_timeout = unacked_timeout
        self._conn: _ClientConnection | None = None
        self._connecting: asyncio.Task[_ClientConnection] | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        self._next_call_id = 1
        self._prefixes: dict[tuple[str, str], bytes] = {}
        self._closed = False

    @property
    def address(self) -> str:
        """The peer as ``host:port``."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while the channel holds an open connection."""
        return self._conn is not None and not self._conn.closed

    async def call(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[R],
        *,
        timeout: float | None = None,
        controller: RpcController | None = None,
    ) -> R:
        """Call ``service.method`` (short service name) with ``request``; return its response.

        ``timeout`` (seconds, default ``default_timeout``) bounds the whole call, connecting
        included. Raises RpcTimeoutError, RpcConnectionError, RpcCancelledError (through
        ``controller.cancel()``), RpcRemoteError for an error status, FrameTooLargeError for an
        oversize request, RpcBadResponseError for a reply that does not parse. When given,
        ``controller`` records the deadline and the outcome.
        """
        loop = asyncio.get_running_loop()
        if timeout is None:
            timeout = self.default_timeout
        deadline = None if timeout is None else loop.time() + timeout
        if controller is not None:
            controller.deadline = deadline
        try:
            header, payload = await self._roundtrip(
                loop, service, method, request, deadline, controller
            )
            if header.status:
                raise _remote_error(header)
            try:
                return response_type.FromString(payload)
            except DecodeError as exc:
                raise RpcBadResponseError(
                    f"reply to {service}.{method} does not parse as "
                    f"{response_type.DESCRIPTOR.full_name}: {exc}"
                ) from None
        except RpcError as exc:
            if controller is not None:
                controller._record_error(exc)
            raise

    async def _roundtrip(
        self,
        loop: asyncio.AbstractEventLoop,
        service: str,
        method: str,
        request: Message,
        deadline: float | None,
        controller: RpcController | None,
    ) -> _Reply:
        if controller is not None and controller.is_cancelled():
            raise RpcCancelledError(f"{service}.{method} was cancelled before it started")
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect(loop, deadline)
        prefix = self._prefixes.get((service, method))
        if prefix is None:
            prefix = request_prefix(service.encode(), method.encode())
            self._prefixes[(service, method)] = prefix
        call_id = self._next_call_id
        self._next_call_id = call_id + 1
        deadline_ms = 0
        if deadline is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RpcTimeoutError(f"{service}.{method} to {self.address}: deadline passed")
            deadline_ms = min(_MAX_DEADLINE_MS, max(1, math.ceil(remaining * 1000)))
        frame = encode_request(
            prefix, request.SerializeToString(), call_id, deadline_ms, self.max_frame_size
        )
        if conn.closed:
            raise RpcConnectionError(f"connection to {self.address} lost")
        future: asyncio.Future[_Reply] = loop.create_future()
        timer = (
            None
            if deadline is None
            else loop.call_at(deadline, _expire, future, service, method, self.address)
        )
        pending = conn.pending
        pending[call_id] = future
        conn.send(frame)
        if controller is not None:
            controller._canceller = lambda: _cancel(future, service, method)
        try:
            return await future
        except (RpcCancelledError, asyncio.CancelledError):
            if not conn.closed:
                conn.send(encode_cancel(call_id))
            raise
        finally:
            if timer is not None:
                timer.cancel()
            pending.pop(call_id, None)
            if controller is not None:
                controller._canceller = None

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> _ClientConnection:
        if self._closed:
            raise RpcConnectionError(f"channel to {self.address} is closed")
        task = self._connecting
        if task is None:
            wait = self._retry_at - loop.time()
            if wait > 0:
                raise RpcConnectionError(
                    f"cannot connect to {self.address} ({self._last_error}); "
                    f"next attempt in {wait:.2f}s"
                )
            task = loop.create_task(self._open(loop))
            task.add_done_callback(_retrieve)
            self._connecting = task
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(task)
        except TimeoutError:
            raise RpcTimeoutError(f"timed out connecting to {self.address}") from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                # close() cancelled the attempt, not our caller: that is a connection failure.
                raise RpcConnectionError(
                    f"channel to {self.address} closed while connecting"
                ) from None
            raise

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _ClientConnection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, conn = await loop.create_connection(
                    lambda: _ClientConnection(self), self.host, self.port
                )
            _set_user_timeout(transport, self.unacked_timeout)
        except (OSError, TimeoutError) as exc:
            self._failures += 1
            backoff = min(self.backoff_max, self.backoff_initial * 2 ** (self._failures - 1))
            self._retry_at = loop.time() + backoff
            self._last_error = str(exc) or type(exc).__name__
            raise RpcConnectionError(
                f"cannot connect to {self.address}: {self._last_error}"
            ) from None
        finally:
            self._connecting = None
        if self._closed:
            conn.close()
            raise RpcConnectionError(f"channel to {self.address} is closed")
        self._failures = 0
        self._retry_at = 0.0
        self._conn = conn
        return conn

    def _lost(self, conn: _ClientConnection) -> None:
        if self._conn is conn:
            self._conn = None

    def reset(self) -> None:
        """Abort the connection now, dropping the bytes it has not written yet; its pending
        calls fail with RpcConnectionError and the next call connects afresh. For a caller that
        found the peer not reading (a call timed out) and must not keep its frames buffered."""
        conn = self._conn
        self._conn = None
        if conn is not None:
            conn.abort(f"connection to {self.address} reset by the caller")

    async def close(self) -> None:
        """Close the connection; pending and later calls fail with RpcConnectionError."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        conn = self._conn
        self._conn = None
        if conn is not None:
            conn.close()
            await conn.lost.wait()

    async def __aenter__(self) -> RpcChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _set_user_timeout(transport: asyncio.BaseTransport, timeout: float | None) -> None:
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    sock = transport.get_extra_info("socket")
    if timeout is not None and option is not None and sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, round(timeout * 1000)))


def _remote_error(header: RpcResponseHeader) -> RpcRemoteError:
    text = header.error_text.decode(errors="replace")
    try:
        status = Status(header.status)
    except ValueError:
        return RpcRemoteError(Status.HANDLER_ERROR, f"unknown status {header.status}: {text}")
    return RpcRemoteError(status, text)


def _expire(future: asyncio.Future[_Reply], service: str, method: str, address: str) -> None:
    if not future.done():
        future.set_exception(RpcTimeoutError(f"{service}.{method} to {address} timed out"))


def _cancel(future: asyncio.Future[_Reply], service: str, method: str) -> None:
    if not future.done():
        future.set_exception(RpcCancelledError(f"{service}.{method} was cancelled"))


def _retrieve(task: asyncio.Task[_ClientConnection]) -> None:
    """Mark a connect task's outcome as seen even when every caller stopped waiting for it."""
    if not task.cancelled():
        task.exception()


class _ClientConnection(asyncio.Protocol):
    """The connection under an RpcChannel: writes request frames, routes replies by call id."""

    def __init__(self, channel: RpcChannel) -> None:
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.decoder = ResponseDecoder(channel.max_frame_size)
        self.pending: dict[int, asyncio.Future[_Reply]] = {}
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.closed = False
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = str(exc) if exc is not None else "closed by the peer"
        self._fail_all(f"connection to {self.channel.address} lost: {reason}")
        self.lost.set()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            _log.warning("dropping %s: bad reply stream: %s", self.channel.address, exc)
            self._fail_all(f"bad reply stream from {self.channel.address}: {exc}")
            if self.transport is not None:
                self.transport.abort()
            return
        pending = self.pending
        for header, payload in frames:
            future = pending.pop(header.call_id, None)
            # No future: the call timed out or was cancelled before its reply arrived.
            if future is not None and not future.done():
                future.set_result((header, payload))

    def send(self, frame: bytes) -> None:
        """Queue a frame; everything queued in one loop iteration goes out in one write."""
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(frame)

    def _flush(self) -> None:
        out = self.out
        if self.closed or not out or self.transport is None:
            out.clear()
            return
        self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def abort(self, reason: str) -> None:
        """Drop the connection and its unwritten bytes; pending calls fail with ``reason``."""
        self.out.clear()
        self._fail_all(reason)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close the connection; pending calls fail with RpcConnectionError."""
        self._fail_all(f"channel to {self.channel.address} closed")
        if self.transport is not None:
            self.transport.close()

    def _fail_all(self, reason: str) -> None:
        self.closed = True
        self.channel._lost(self)
        pending = list(self.pending.values())
        self.pending.clear()
        for future in pending:
            if not future.done():
                future.set_exception(RpcConnectionError(reason))
