"""RpcProvider: an asyncio server for protobuf services described by their ServiceDescriptor.

Theory of operation. Each accepted connection gets a ``_ServerConnection`` protocol that feeds
received bytes to a sans-I/O ``RequestDecoder``. Every complete request frame is dispatched at
once: a coroutine handler runs as its own task, so requests pipelined on one connection run
concurrently, and each reply is written when its handler finishes (replies to one data chunk
are batched into one write per loop iteration). A plain function handler is answered inline,
without a task: for methods that never wait, it saves a task and a loop iteration per call.

A request whose header has a call id is answered with a framed response carrying that id and a
status, in completion order. A request without one comes from a legacy (C++ original) client:
it is answered with the bare serialized response, and legacy replies leave in request order,
held back until every earlier legacy request on the connection has been answered. A legacy
caller cannot be told about an error, so any failure of a legacy call closes its connection
after the replies before it have been sent.

A cancel frame (``cancel`` set, with a call id) cancels that call's handler; the abandoned
call gets no reply.

Stream errors (bad length prefix, unparsable header, oversize frame) cannot be recovered from:
the connection is closed with one log line. A frame that stays half-sent for ``frame_timeout``
seconds, or a connection with no bytes and no calls for ``idle_timeout`` seconds, is closed too.
Per-call failures (unknown service or method, args that do not parse, a raising handler, an
expired deadline) are answered with an error status and logged; the connection and the server
keep working.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from rpc.codec import DEFAULT_MAX_FRAME_SIZE, Frame, RequestDecoder, encode_response
from rpc.controller import RpcController
from rpc.errors import FrameError, FrameTooLargeError, Status
from rpc.rpcheader_pb2 import RpcHeader

_log = logging.getLogger(__name__)

Handler = Callable[[Any, RpcController], Coroutine[Any, Any, Message] | Message]
"""An RPC handler: ``async def Method(request, controller) -> response``, or a plain function
``def Method(request, controller) -> response`` for a method that never waits."""


class _Method:
    """One registered method: how to parse its request, check its response, and run it."""

    __slots__ = ("full_name", "handler", "request_type", "response_type")

    def __init__(self, descriptor: MethodDescriptor, handler: Handler) -> None:
        self.full_name = f"{descriptor.containing_service.name}.{descriptor.name}"
        self.handler = handler
        self.request_type: type[Message] = GetMessageClass(descriptor.input_type)
        self.response_type: type[Message] = GetMessageClass(descriptor.output_type)


class RpcProvider:
    """Serves registered protobuf services over TCP, to framed and legacy callers alike.

    Register services with :meth:`register`, then :meth:`start` listening, and :meth:`close`
    (or leave an ``async with`` block) to shut down gracefully. All timeouts are in seconds.
    """

    def __init__(
        self,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        frame_timeout: float = 30.0,
        idle_timeout: float = 600.0,
        max_inflight_per_connection: int = 1024,
    ) -> None:
        if frame_timeout <= 0 or idle_timeout <= 0 or max_inflight_per_connection < 1:
            raise ValueError("timeouts and max_inflight_per_connection must be positive")
        self.max_frame_size = max_frame_size
        self.frame_timeout = frame_timeout
        self.idle_timeout = idle_timeout
        self.max_inflight = max_inflight_per_connection
        self._methods: dict[tuple[bytes, bytes], _Method] = {}
        self._services: dict[bytes, str] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[_ServerConnection] = set()
        self._shutting_down = False

    def register(self, service: ServiceDescriptor, handlers: object) -> None:
        """Serve ``service`` with ``handlers``.

        ``handlers`` is either a mapping from method name to handler, or an object whose
        attributes named like the methods are the handlers. Every method needs a handler; a
        mapping with names the service lacks, or a second service with the same short name,
        is refused with ValueError.
        """
        name = service.name.encode()
        if name in self._services:
            raise ValueError(f"a service named {service.name!r} is already registered")
        chosen: dict[str, Handler] = {}
        for method in service.methods:
            found = (
                handlers.get(method.name)
                if isinstance(handlers, Mapping)
                else getattr(handlers, method.name, None)
            )
            if not callable(found):
                raise ValueError(f"no handler for {service.full_name}.{method.name}")
            chosen[method.name] = found
        if isinstance(handlers, Mapping):
            extra = set(handlers) - set(chosen)
            if extra:
                raise ValueError(f"{service.full_name} has no methods named {sorted(extra)}")
        self._services[name] = service.full_name
        for method in service.methods:
            self._methods[(name, method.name.encode())] = _Method(method, chosen[method.name])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Start listening; return the bound (host, port) (port 0 picks a free port)."""
        if self._server is not None:
            raise RuntimeError("the provider is already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ServerConnection(self), host, port)
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the provider listens on."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the provider is not listening")
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def close(self, grace: float = 5.0) -> None:
        """Shut down: stop accepting, let in-flight calls finish for up to ``grace`` seconds,
        answer the rest with SHUTTING_DOWN, then close every connection."""
        if self._shutting_down:
            return
        self._shutting_down = True
        if self._server is not None:
            self._server.close()
        tasks = [task for conn in self._connections for task in conn.calls]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                # A handler that ignores cancellation must not hold the shutdown forever.
                await asyncio.wait(late, timeout=grace)
        for conn in list(self._connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
        # Let each transport's connection_lost run before the loop may stop.
        await asyncio.sleep(0)

    async def __aenter__(self) -> RpcProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Used by _ServerConnection.

    def _lookup(self, header: RpcHeader) -> _Method | tuple[Status, str]:
        method = self._methods.get((header.service_name, header.method_name))
        if method is not None:
            return method
        service = header.service_name.decode(errors="replace")
        if header.service_name not in self._services:
            return Status.UNKNOWN_SERVICE, f"unknown service {service!r}"
        name = header.method_name.decode(errors="replace")
        return Status.UNKNOWN_METHOD, f"service {service!r} has no method {name!r}"


class _Call:
    """One call: its task, deadline timer, and (legacy) place in the reply queue.

    ``method`` is None for a request naming no registered method.
    """

    __slots__ = (
        "abandoned",
        "call_id",
        "conn",
        "controller",
        "done",
        "expired",
        "method",
        "reply",
        "task",
        "timer",
    )

    def __init__(self, conn: _ServerConnection, call_id: int, method: _Method | None) -> None:
        self.conn = conn
        self.call_id = call_id
        self.method = method
        self.controller = RpcController()
        self.expired = False
        self.abandoned = False
        self.task: asyncio.Task[Message] | None = None
        self.timer: asyncio.TimerHandle | None = None
        # Legacy calls only: set when answered; reply None then means "close the connection".
        self.done = False
        self.reply: bytes | None = None

    def expire(self) -> None:
        """The caller's deadline passed: cancel the handler (answered DEADLINE_EXCEEDED)."""
        self.expired = True
        if self.task is not None:
            self.task.cancel()

    def finished(self, task: asyncio.Task[Message]) -> None:
        """The handler's task is done: turn its outcome into the reply."""
        if self.timer is not None:
            self.timer.cancel()
        conn = self.conn
        conn.calls.pop(task, None)
        if self.call_id:
            conn.by_id.pop(self.call_id, None)
        conn.update_reading()
        if task.cancelled():
            if self.abandoned:
                return
            if self.expired:
                conn.fail(self, Status.DEADLINE_EXCEEDED, "deadline exceeded", log=False)
            else:
                conn.fail(self, Status.SHUTTING_DOWN, "the server is shutting down", log=False)
            return
        exc = task.exception()
        if exc is not None:
            self.raised(exc)
            return
        self.respond(task.result())

    def raised(self, exc: BaseException) -> None:
        """The handler raised ``exc``: answer with HANDLER_ERROR."""
        method = self.method
        assert method is not None
        self.conn.fail(self, Status.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
        _log.debug("traceback of the failed %s handler", method.full_name, exc_info=exc)

    def respond(self, response: object) -> None:
        """The handler returned ``response``: check and serialize it, then answer."""
        conn = self.conn
        method = self.method
        assert method is not None
        if self.controller.failed():
            conn.fail(self, Status.HANDLER_ERROR, self.controller.error_text())
        elif type(response) is not method.response_type:
            expected = method.response_type.DESCRIPTOR.full_name
            got = type(response).__name__
            conn.fail(self, Status.HANDLER_ERROR, f"handler returned {got}, expected {expected}")
        else:
            try:
                payload = response.SerializeToString()
            except Exception as exc:  # e.g. a proto2 response missing required fields
                conn.fail(self, Status.HANDLER_ERROR, f"response does not serialize: {exc}")
                return
            conn.succeed(self, payload)


class _ServerConnection(asyncio.Protocol):
    """One accepted connection: decodes requests, runs handlers, writes replies."""

    def __init__(self, provider: RpcProvider) -> None:
        self.provider = provider
        self.loop = asyncio.get_running_loop()
        self.decoder = RequestDecoder(provider.max_frame_size)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.calls: dict[asyncio.Task[Message], _Call] = {}
        self.by_id: dict[int, _Call] = {}
        self.legacy: collections.deque[_Call] = collections.deque()
        self.closed = False
        self.out: list[bytes] = []
        self.reading_paused = False
        self.writing_paused = False
        self.last_activity = self.loop.time()
        self.partial_since: float | None = None
        self.timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.provider._connections.add(self)
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.provider._connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        # Nobody is left to answer: stop the work this caller asked for.
        for task in list(self.calls):
            task.cancel()
        self.legacy.clear()
        self.out.clear()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.update_reading()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            self._drop(f"bad request stream: {exc}")
            return
        for frame in frames:
            if self.closed:
                return
            self._dispatch(frame)
        if self.decoder.buffered:
            if self.partial_since is None:
                self.partial_since = self.last_activity
        else:
            self.partial_since = None
        self.update_reading()

    # Dispatch and replies.

    def _dispatch(self, frame: Frame[RpcHeader]) -> None:
        header, args = frame
        call_id = header.call_id
        if header.cancel:
            self._cancel(call_id)
            return
        found = self.provider._lookup(header)
        call = _Call(self, call_id, found if isinstance(found, _Method) else None)
        if not call_id:
            self.legacy.append(call)
        if not isinstance(found, _Method):
            self.fail(call, found[0], found[1])
            return
        if self.provider._shutting_down:
            self.fail(call, Status.SHUTTING_DOWN, "the server is shutting down", log=False)
            return
        try:
            request = found.request_type.FromString(args)
        except DecodeError as exc:
            self.fail(call, Status.BAD_REQUEST, f"args do not parse as {found.full_name}: {exc}")
            return
        controller = call.controller
        if header.deadline_ms:
            controller.deadline = self.loop.time() + header.deadline_ms / 1000.0
        try:
            outcome = found.handler(request, controller)
        except Exception as exc:  # a plain handler that raised
            call.raised(exc)
            return
        if not asyncio.iscoroutine(outcome):
            call.respond(outcome)
            return
        if controller.deadline is not None:
            call.timer = self.loop.call_at(controller.deadline, call.expire)
        task = self.loop.create_task(outcome)
        call.task = task
        self.calls[task] = call
        if call_id:
            self.by_id[call_id] = call
        task.add_done_callback(call.finished)

    def _cancel(self, call_id: int) -> None:
        """The caller abandoned ``call_id``: stop its handler (unknown ids are already done)."""
        call = self.by_id.pop(call_id, None)
        if call is not None and call.task is not None:
            call.abandoned = True
            call.task.cancel()

    def fail(self, call: _Call, status: Status, text: str, *, log: bool = True) -> None:
        """Answer ``call`` with an error (a legacy call: close after earlier replies)."""
        if log:
            name = call.method.full_name if call.method is not None else "request"
            legacy = "" if call.call_id else " (legacy caller: closing the connection)"
            _log.warning("rpc %s from %s failed: %s%s", name, self.peer, text, legacy)
        if call.call_id:
            self._write(encode_response(call.call_id, status, text.encode(), b""))
        else:
            call.reply = None
            call.done = True
            self._send_legacy()

    def succeed(self, call: _Call, payload: bytes) -> None:
        """Answer ``call`` with its serialized response."""
        if call.call_id:
            try:
                frame = encode_response(
                    call.call_id, Status.OK, b"", payload, self.provider.max_frame_size
                )
            except FrameTooLargeError as exc:
                self.fail(call, Status.HANDLER_ERROR, f"response too large: {exc}")
                return
            self._write(frame)
        else:
            call.reply = payload
            call.done = True
            self._send_legacy()

    def _send_legacy(self) -> None:
        """Write the finished legacy replies at the head of the queue, in request order."""
        legacy = self.legacy
        while legacy and legacy[0].done:
            call = legacy.popleft()
            if call.reply is None:
                self.close()
                return
            self._write(call.reply)

    def _write(self, frame: bytes) -> None:
        if self.closed:
            return
        self.last_activity = self.loop.time()
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(frame)

    def _flush(self) -> None:
        if self.closed or not self.out or self.transport is None:
            return
        out = self.out
        self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def update_reading(self) -> None:
        """Backpressure: stop reading while too many calls run or the peer does not read."""
        if self.closed or self.transport is None:
            return
        pause = self.writing_paused or len(self.calls) >= self.provider.max_inflight
        if pause != self.reading_paused:
            self.reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # Closing.

    def close(self) -> None:
        """Flush pending replies and close the connection."""
        self._flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _drop(self, reason: str) -> None:
        _log.warning("closing connection from %s: %s", self.peer, reason)
        self.close()

    def _arm_timer(self) -> None:
        provider = self.provider
        period = min(provider.frame_timeout, provider.idle_timeout) / 4
        self.timer = self.loop.call_later(period, self._check_timeouts)

    def _check_timeouts(self) -> None:
        if self.closed:
            return
        now = self.loop.time()
        provider = self.provider
        if self.partial_since is not None and now - self.partial_since >= provider.frame_timeout:
            self._drop(f"a frame stayed incomplete for {provider.frame_timeout:g}s")
            return
        if not self.calls and now - self.last_activity >= provider.idle_timeout:
            self._drop(f"idle for {provider.idle_timeout:g}s")
            return
        self._arm_timer()
