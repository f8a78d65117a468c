"""AsyncClerk: the KV service's client on asyncio, with retries, leader tracking and deadlines.

Theory of operation
-------------------
The clerk holds one :class:`rpc.RpcChannel` per server and a :class:`clerk.core.ClerkCore` that
makes every decision: which server to ask, how long to wait before the next ask, which request id
a write carries. An operation asks the cached leader first. A reply ``ErrWrongLeader`` moves to
the server its ``LeaderHint`` names (or the next one); ``ErrTimeout``, an RPC timeout, a
connection error or a server-side RPC failure move to the next server. After every server was
asked once in a round the clerk backs off (capped exponential, with jitter) before the next round.

A write gets its request id once and keeps it through every retry, so however many copies reach
the log it takes effect once and every copy gets the first execution's answer. Each operation has
a deadline (``op_timeout``, or ``timeout=`` per call); when it passes the clerk raises
:class:`OperationTimeoutError`. For a write the outcome is then unknown, and the error says so.
A write refused ``ErrSessionExpired`` (the servers forgot this clerk's session) renews the session
and raises :class:`SessionExpiredError`, never sending it again, unless the refused copy was the
only one sent: then it had no effect and goes once more in the new session (docs/sessions.md).

Clerks in one process may share their connections (:class:`Connections`): each clerk keeps its
own session (ClientId, request ids, leader cache) while their calls are multiplexed on one
channel per server, so the replies to many clerks come back in one read instead of one each.

Reads are linearizable by default (the leader confirms its leadership before answering);
``lease=True`` asks for a lease read (served as one only by nodes configured for lease reads);
``get_stale`` / ``scan_stale`` read one server's local state at once and return results typed as
stale. Many operations may run concurrently on one clerk.

When a :class:`lincheck.HistoryRecorder` is given, every operation except stale reads is recorded
for the linearizability checker: ``ok`` with its output when answered; a timed-out write as
``unknown``; a read that failed, or a write the server refused without executing it, as ``fail``.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar, cast

from google.protobuf.message import Message

from clerk.core import Attempt, ClerkCore, ClerkSession, RetryPolicy, hint_from_raft_id
from clerk.errors import ServerError, SessionExpiredError
from clerk.replies import certainly_no_effect, conditional, get_value, timeout_error
from clerk.results import ConditionalResult, StaleRead, StaleScan
from kvapi import kvserver_rpc_pb2 as pb
from kvapi.codes import (
    ERR_CAS_MISMATCH,
    ERR_KEY_EXISTS,
    ERR_NO_KEY,
    ERR_SESSION_EXPIRED,
    ERR_STORAGE_UNAVAILABLE,
    ERR_TIMEOUT,
    ERR_WRONG_LEADER,
)
from kvapi.config import load_test_conf
from lincheck import HistoryRecorder, Json, Status, bytes_to_str
from rpc import RpcChannel, RpcConnectionError, RpcRemoteError, RpcTimeoutError
from rpc import Status as RpcStatus

__all__ = [
    "DEFAULT_OP_TIMEOUT",
    "DEFAULT_RPC_TIMEOUT",
    "AsyncClerk",
    "Connections",
    "Servers",
    "resolve_servers",
]

DEFAULT_OP_TIMEOUT = 10.0
DEFAULT_RPC_TIMEOUT = 1.0

Servers = Sequence[tuple[str, int]] | str | os.PathLike[str]
"""Server addresses: a list of (host, port) in node order, or the path of a ``test.conf``."""

Key = bytes | str

R = TypeVar("R", bound=Message)

_SERVICE = "kvServerRpc"
# Remote statuses after which another server may well succeed.
_RETRYABLE_REMOTE = frozenset(
    (RpcStatus.HANDLER_ERROR, RpcStatus.DEADLINE_EXCEEDED, RpcStatus.SHUTTING_DOWN)
)


def resolve_servers(servers: Servers) -> list[tuple[str, int]]:
    """The (host, port) list ``servers`` denotes (reading the test.conf when given a path)."""
    if isinstance(servers, str | os.PathLike):
        return load_test_conf(servers)
    resolved = [(str(host), int(port)) for host, port in servers]
    if not resolved:
        raise ValueError("a clerk needs at least one server address")
    for host, port in resolved:
        if not host or not 1 <= port <= 65535:
            raise ValueError(f"bad server address {host!r}:{port}")
    return resolved


class Connections:
    """One long-lived channel per server of a cluster, to share among many clerks.

    ``AsyncClerk(connections)`` uses these channels instead of opening its own and leaves them
    open when it closes; close them with :meth:`close` (or ``async with``) after the clerks.
    Create and use on one event loop.
    """

    def __init__(self, servers: Servers, *, connect_timeout: float = 0.5) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.servers = resolve_servers(servers)
        self.channels = [
            RpcChannel(host, port, connect_timeout=connect_timeout, backoff_max=0.5)
            for host, port in self.servers
        ]

    async def close(self) -> None:
        """Close every channel; calls still running on them fail."""
        await asyncio.gather(*(channel.close() for channel in self.channels))

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncClerk:
    """A client of one raftkv cluster; use it as ``async with AsyncClerk(servers) as kv:``.

    ``servers`` are addresses (or a test.conf path), or shared :class:`Connections`. Keys and
    values are bytes; a str is encoded as UTF-8. ``op_timeout`` (seconds) is each operation's
    default deadline, ``rpc_timeout`` bounds one ask of one server. ``rng`` draws the backoff
    jitter (a fresh unseeded Random by default); ``client_id`` defaults to ``uuid4().bytes`` and
    must be unique per clerk. Create and use it on one event loop.
    """

    def __init__(
        self,
        servers: Servers | Connections,
        *,
        op_timeout: float = DEFAULT_OP_TIMEOUT,
        rpc_timeout: float = DEFAULT_RPC_TIMEOUT,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        client_id: bytes | None = None,
        history: HistoryRecorder | None = None,
        connect_timeout: float = 0.5,
    ) -> None:
        if op_timeout <= 0 or rpc_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("op_timeout, rpc_timeout and connect_timeout must be positive")
        if isinstance(servers, Connections):
            self._connections, self._owns_connections = servers, False
        else:
            self._connections = Connections(servers, connect_timeout=connect_timeout)
            self._owns_connections = True
        self.servers = self._connections.servers
        self.op_timeout = op_timeout
        self.rpc_timeout = rpc_timeout
        self.core = ClerkCore(
            len(self.servers),
            client_id if client_id is not None else uuid.uuid4().bytes,
            rng if rng is not None else random.Random(),
            policy if policy is not None else RetryPolicy(),
        )
        self.history = history
        self._channels = self._connections.channels

    @property
    def client_id(self) -> bytes:
        """This clerk's session id (every write carries it)."""
        return self.core.client_id

    @property
    def leader(self) -> int:
        """Index of the server this clerk currently believes leads."""
        return self.core.leader

    async def close(self) -> None:
        """Close this clerk's own connections (shared ones stay open for the other clerks);
        operations still running on its own connections fail."""
        if self._owns_connections:
            await self._connections.close()

    async def __aenter__(self) -> AsyncClerk:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- reads ---------------------------------------------------------------------------------

    async def get(
        self, key: Key, *, lease: bool = False, timeout: float | None = None
    ) -> bytes | None:
        """The value of ``key``, None if absent; linearizable (``lease``: a lease read)."""
        k = _as_bytes(key)
        mode = pb.READ_LEASE if lease else pb.READ_LINEARIZABLE
        with self._record("get", k, None) as rec:
            reply = await self._read("Get", pb.GetArgs(Key=k, Mode=mode), pb.GetReply, timeout)
            value = get_value(reply)
            rec.output = value
            return value

    async def scan(
        self,
        start: Key = b"",
        end: Key | None = None,
        limit: int | None = None,
        *,
        lease: bool = False,
        timeout: float | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < end`` (``end`` None: no bound) ascending, at most ``limit``
        (None: all); linearizable (``lease``: a lease read)."""
        args = _scan_args(start, end, limit, pb.READ_LEASE if lease else pb.READ_LINEARIZABLE)
        with self._record("scan", args.Start, [None if end is None else args.End, limit]) as rec:
            reply = await self._read("Scan", args, pb.ScanReply, timeout)
            pairs = [(kv.Key, kv.Value) for kv in reply.Pairs]
            rec.output = [[k, v] for k, v in pairs]
            return pairs

    async def get_stale(
        self, key: Key, *, server: int | None = None, timeout: float | None = None
    ) -> StaleRead:
        """``key``'s value from one server's local state, which may be OUT OF DATE.

        Asks ``server`` (an index) first, else the cached leader, and moves on if it fails.
        """
        args = pb.GetArgs(Key=_as_bytes(key), Mode=pb.READ_STALE)
        reply, served_by = await self._stale("Get", args, pb.GetReply, server, timeout)
        return StaleRead(get_value(reply), served_by)

    async def scan_stale(
        self,
        start: Key = b"",
        end: Key | None = None,
        limit: int | None = None,
        *,
        server: int | None = None,
        timeout: float | None = None,
    ) -> StaleScan:
        """Like :meth:`scan` but from one server's local state, which may be OUT OF DATE."""
        args = _scan_args(start, end, limit, pb.READ_STALE)
        reply, served_by = await self._stale("Scan", args, pb.ScanReply, server, timeout)
        return StaleScan([(kv.Key, kv.Value) for kv in reply.Pairs], served_by)

    # -- writes --------------------------------------------------------------------------------

    async def put(self, key: Key, value: Key, *, timeout: float | None = None) -> None:
        """Set ``key`` to ``value``."""
        await self._put_append(b"Put", "put", key, value, timeout)

    async def append(self, key: Key, value: Key, *, timeout: float | None = None) -> None:
        """Append ``value`` to ``key``'s value (an absent key counts as empty)."""
        await self._put_append(b"Append", "append", key, value, timeout)

    async def delete(self, key: Key, *, timeout: float | None = None) -> ConditionalResult:
        """Remove ``key``; ``applied`` False if it was absent."""
        k = _as_bytes(key)
        with self._record("delete", k, None) as rec:
            reply = await self._write(
                "Delete",
                lambda cid, rid, acked: pb.DeleteArgs(
                    Key=k, ClientId=cid, RequestId=rid, AckedBelow=acked
                ),
                pb.DeleteReply,
                timeout,
            )
            result = conditional(
                "delete", reply.Err, reply.Value, ok_previous=reply.Value, refusals=(ERR_NO_KEY,)
            )
            rec.output = result.applied
            return result

    async def put_if_absent(
        self, key: Key, value: Key, *, timeout: float | None = None
    ) -> ConditionalResult:
        """Store ``value`` only if ``key`` is absent; else ``previous`` is the existing value."""
        k, v = _as_bytes(key), _as_bytes(value)
        with self._record("put_if_absent", k, v) as rec:
            reply = await self._write(
                "PutIfAbsent",
                lambda cid, rid, acked: pb.PutIfAbsentArgs(
                    Key=k, Value=v, ClientId=cid, RequestId=rid, AckedBelow=acked
                ),
                pb.PutIfAbsentReply,
                timeout,
            )
            result = conditional(
                "put_if_absent",
                reply.Err,
                reply.Value,
                ok_previous=None,
                refusals=(ERR_KEY_EXISTS,),
            )
            rec.output = result.applied
            return result

    async def update(
        self, key: Key, value: Key, *, timeout: float | None = None
    ) -> ConditionalResult:
        """Store ``value`` only if ``key`` is present; ``previous`` is the value it replaced."""
        k, v = _as_bytes(key), _as_bytes(value)
        with self._record("update", k, v) as rec:
            reply = await self._write(
                "Update",
                lambda cid, rid, acked: pb.UpdateArgs(
                    Key=k, Value=v, ClientId=cid, RequestId=rid, AckedBelow=acked
                ),
                pb.UpdateReply,
                timeout,
            )
            result = conditional(
                "update", reply.Err, reply.Value, ok_previous=reply.Value, refusals=(ERR_NO_KEY,)
            )
            rec.output = result.applied
            return result

    async def cas(
        self, key: Key, expected: Key | None, new: Key, *, timeout: float | None = None
    ) -> ConditionalResult:
        """Set ``key`` to ``new`` only if it holds ``expected`` (None: only if it is absent).

        When refused, ``previous`` is the key's current value (None: absent).
        """
        k, n = _as_bytes(key), _as_bytes(new)
        e = None if expected is None else _as_bytes(expected)
        # The checker's cas never matches an absent key; expecting absence is put_if_absent.
        if e is None:
            recording = self._record("put_if_absent", k, n)
        else:
            recording = self._record("cas", k, [e, n])
        with recording as rec:
            reply = await self._write(
                "CompareAndSwap",
                lambda cid, rid, acked: pb.CompareAndSwapArgs(
                    Key=k,
                    Expected=e or b"",
                    ExpectAbsent=e is None,
                    Value=n,
                    ClientId=cid,
                    RequestId=rid,
                    AckedBelow=acked,
                ),
                pb.CompareAndSwapReply,
                timeout,
            )
            result = conditional(
                "cas",
                reply.Err,
                reply.Value,
                ok_previous=e,
                refusals=(ERR_CAS_MISMATCH, ERR_NO_KEY),
            )
            rec.output = result.applied
            return result

    async def _put_append(
        self, op: bytes, name: str, key: Key, value: Key, timeout: float | None
    ) -> None:
        k, v = _as_bytes(key), _as_bytes(value)
        with self._record(name, k, v):
            reply = await self._write(
                "PutAppend",
                lambda cid, rid, acked: pb.PutAppendArgs(
                    Key=k, Value=v, Op=op, ClientId=cid, RequestId=rid, AckedBelow=acked
                ),
                pb.PutAppendReply,
                timeout,
            )
            err = reply.Err.decode(errors="replace")
            if err != "OK":
                raise ServerError(name, err)

    # -- the retry loop ------------------------------------------------------------------------

    async def _read(
        self, method: str, args: Message, reply_type: type[R], timeout: float | None
    ) -> R:
        attempt = self.core.start()
        reply = await self._ask_until_answered(method, lambda: args, reply_type, attempt, timeout)
        attempt.on_success()
        return reply

    async def _stale(
        self,
        method: str,
        args: Message,
        reply_type: type[R],
        server: int | None,
        timeout: float | None,
    ) -> tuple[R, int]:
        attempt = self.core.start()
        if server is not None:
            if not 0 <= server < len(self.servers):
                raise ValueError(f"server index {server} is not in 0..{len(self.servers) - 1}")
            attempt.server = server
        reply = await self._ask_until_answered(method, lambda: args, reply_type, attempt, timeout)
        # Any server answers a stale read: the leader cache learns nothing from it.
        return reply, attempt.server

    async def _write(
        self,
        method: str,
        build: Callable[[bytes, int, int], Message],
        reply_type: type[R],
        timeout: float | None,
    ) -> R:
        """Ask until the write is answered; ErrSessionExpired renews the session and raises,
        except when the refused copy was the only one sent: then it provably had no effect and
        goes once more, as the new session's request."""
        loop = asyncio.get_running_loop()
        budget = self.op_timeout if timeout is None else timeout
        deadline = loop.time() + budget
        session = self.core.session
        reply, attempt = await self._write_in(session, method, build, reply_type, budget)
        if _expired(reply):
            session = self.core.renew_session(session, uuid.uuid4().bytes)
            remaining = deadline - loop.time()
            if attempt.asks > 1 or remaining <= 0:
                raise SessionExpiredError(method, outcome_unknown=attempt.asks > 1)
            reply, attempt = await self._write_in(session, method, build, reply_type, remaining)
            if _expired(reply):
                self.core.renew_session(session, uuid.uuid4().bytes)
                raise SessionExpiredError(method, outcome_unknown=attempt.asks > 1)
        attempt.on_success()
        return reply

    async def _write_in(
        self,
        session: ClerkSession,
        method: str,
        build: Callable[[bytes, int, int], Message],
        reply_type: type[R],
        timeout: float,
    ) -> tuple[R, Attempt]:
        request_id = session.new_request_id()
        attempt = self.core.start()
        try:
            # Rebuilt per ask with the SAME request id: only the acknowledgement mark may rise.
            reply = await self._ask_until_answered(
                method,
                lambda: build(session.client_id, request_id, session.acked_below()),
                reply_type,
                attempt,
                timeout,
            )
        finally:
            # Answered or abandoned, this clerk will not send the id again.
            session.finish(request_id)
        return reply, attempt

    async def _ask_until_answered(
        self,
        method: str,
        build: Callable[[], Message],
        reply_type: type[R],
        attempt: Attempt,
        timeout: float | None,
    ) -> R:
        """Ask servers as ``attempt`` directs until one gives a final answer, or time runs out."""
        loop = asyncio.get_running_loop()
        budget = self.op_timeout if timeout is None else timeout
        if budget <= 0:
            raise ValueError(f"timeout must be positive, not {budget}")
        deadline = loop.time() + budget
        last_error = "no server was asked"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise timeout_error(method, build(), budget, attempt.asks - 1, last_error)
            channel = self._channels[attempt.server]
            try:
                reply = await channel.call(
                    _SERVICE,
                    method,
                    build(),
                    reply_type,
                    timeout=min(self.rpc_timeout, remaining),
                )
            except (RpcTimeoutError, RpcConnectionError) as exc:
                last_error = f"server {attempt.server} ({channel.address}): {exc}"
                delay = attempt.on_failure()
            except RpcRemoteError as exc:
                if exc.status not in _RETRYABLE_REMOTE:
                    raise ServerError(method, f"{exc.status.name}: {exc.text}") from exc
                last_error = f"server {attempt.server} ({channel.address}): {exc}"
                delay = attempt.on_failure()
            else:
                err = cast(Any, reply).Err.decode(errors="replace")
                if err == ERR_WRONG_LEADER:
                    last_error = f"server {attempt.server} is not the leader"
                    hint = hint_from_raft_id(cast(Any, reply).LeaderHint, len(self.servers))
                    delay = attempt.on_wrong_leader(hint)
                elif err == ERR_TIMEOUT:
                    last_error = f"server {attempt.server} timed out waiting for the cluster"
                    delay = attempt.on_failure()
                elif err == ERR_STORAGE_UNAVAILABLE:
                    # Refused before anything was proposed: that node's disk failed for now.
                    last_error = f"server {attempt.server} cannot persist (storage unavailable)"
                    delay = attempt.on_failure()
                else:
                    return reply
            if delay:
                await asyncio.sleep(min(delay / 1000.0, max(0.0, deadline - loop.time())))

    # -- history -------------------------------------------------------------------------------

    def _record(self, op: str, key: bytes, value: Recordable) -> _Recording | _NotRecording:
        if self.history is None:
            return _NOT_RECORDING
        return _Recording(self.history, self.client_id.hex(), op, key, value)


Recordable: TypeAlias = bytes | bool | int | str | list["Recordable"] | None
"""An operation's input or output as the clerk has it: bytes become JSON strings only when a
history is being recorded, so a clerk without one pays nothing for it."""


def _to_json(value: Recordable) -> Json:
    if isinstance(value, bytes):
        return bytes_to_str(value)
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    return value


class _NotRecording:
    """What an operation records into when there is no history: nothing."""

    __slots__ = ()

    @property
    def output(self) -> Recordable:
        return None

    @output.setter
    def output(self, value: Recordable) -> None:
        pass

    def __enter__(self) -> _NotRecording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


_NOT_RECORDING = _NotRecording()


class _Recording:
    """Records one operation in a HistoryRecorder."""

    def __init__(
        self, history: HistoryRecorder, client: str, op: str, key: bytes, value: Recordable
    ) -> None:
        self._history = history
        self._write = op not in ("get", "scan")
        self._handle = history.call(client, op, bytes_to_str(key), _to_json(value))
        self.output: Recordable = None

    def __enter__(self) -> _Recording:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            self._history.ret(self._handle, _to_json(self.output))
        elif self._write and not certainly_no_effect(exc):
            self._history.ret(self._handle, status=Status.UNKNOWN)
        else:
            self._history.ret(self._handle, status=Status.FAIL)


def _expired(reply: Message) -> bool:
    return bool(cast(Any, reply).Err == ERR_SESSION_EXPIRED.encode())


def _scan_args(start: Key, end: Key | None, limit: int | None, mode: pb.ReadMode) -> pb.ScanArgs:
    if limit is not None and not 1 <= limit < 2**32:
        raise ValueError(f"limit must be a positive 32-bit count or None, not {limit}")
    end_bytes = None if end is None else _as_bytes(end)
    if end_bytes == b"":
        raise ValueError("end=b'' is an empty range; use end=None for no upper bound")
    return pb.ScanArgs(Start=_as_bytes(start), End=end_bytes or b"", Limit=limit or 0, Mode=mode)


def _as_bytes(value: Key) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"keys and values are bytes or str, not {type(value).__name__}")
