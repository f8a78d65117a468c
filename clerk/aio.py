"""AsyncClerk: the KV service's client on asyncio, with retries, leader tracking and deadlines.

Theory of operation
-------------------
The clerk holds :class:`Connections` (the server table and one :class:`rpc.RpcChannel` per
server) and a :class:`clerk.core.ClerkCore` that makes every decision: which server to ask, how
long to wait before the next ask, which request id a write carries. An operation asks the cached
leader first. A reply ``ErrWrongLeader`` moves to the server its ``LeaderHint`` names (or the
next one); ``ErrTimeout``, ``ErrStorageUnavailable`` (the node cannot persist for now), an RPC
timeout, a connection error or a server-side RPC failure move to the next server: the codes
marked retryable in :mod:`kvapi.codes`. After every server was asked once in a round the clerk
backs off (capped exponential, with jitter) before the next round.

The clerk follows the membership (:mod:`clerk.connections`): servers are named by node index
(``node<i>``, Raft id ``i + 1``), the servers given are only where it starts. When a leader hint
names a server the clerk does not ask (a node added since), or after a whole round of asks failed,
it learns the member list from the cluster, waiting at most one rpc timeout within the
operation's deadline; it also refreshes the list in the background every few seconds. Learned
members are asked from then on, removed ones no more.

A write gets its request id once and keeps it through every retry, so however many copies reach
the log it takes effect once and every copy gets the first execution's answer. Each operation has
a deadline (``op_timeout``, or ``timeout=`` per call); when it passes the clerk raises
:class:`OperationTimeoutError`. For a write the outcome is then unknown, and the error says so.
Every other failure is a typed error (:mod:`clerk.errors`), each either a ``NotAppliedError``
(certainly no effect) or an ``OutcomeUnknownError``.
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
import random
import uuid
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from clerk.connections import ClerkServers, Connections, Servers
from clerk.core import Attempt, ClerkCore, ClerkSession, RetryPolicy, hint_from_raft_id
from clerk.errors import RpcRefusedError, SessionExpiredError
from clerk.members import Address
from clerk.recording import NotRecording, Recordable, Recording, record
from clerk.replies import conditional, get_value, require_ok, timeout_error
from clerk.results import ConditionalResult, StaleRead, StaleScan
from kvapi import kvserver_rpc_pb2 as pb
from kvapi.codes import Err
from kvapi.config import format_address
from kvapi.stubs import KvServerRpc
from lincheck import HistoryRecorder
from rpc import Rpc, RpcConnectionError, RpcRemoteError, RpcTimeoutError
from rpc import Status as RpcStatus

__all__ = ["DEFAULT_OP_TIMEOUT", "DEFAULT_RPC_TIMEOUT", "AsyncClerk", "Key"]

DEFAULT_OP_TIMEOUT = 10.0
DEFAULT_RPC_TIMEOUT = 1.0

Key = bytes | str

A = TypeVar("A", bound=Message)
# The kvServerRpc replies, every one with Err and LeaderHint; W: the writes'.
R = TypeVar(
    "R",
    pb.GetReply,
    pb.ScanReply,
    pb.PutAppendReply,
    pb.DeleteReply,
    pb.PutIfAbsentReply,
    pb.UpdateReply,
    pb.CompareAndSwapReply,
)
W = TypeVar(
    "W",
    pb.PutAppendReply,
    pb.DeleteReply,
    pb.PutIfAbsentReply,
    pb.UpdateReply,
    pb.CompareAndSwapReply,
)
# The conditional writes' replies: Err, the Value the write saw, LeaderHint.
V = TypeVar("V", pb.DeleteReply, pb.PutIfAbsentReply, pb.UpdateReply, pb.CompareAndSwapReply)

Build = Callable[[bytes, int, int], A]
"""Builds a write's request from its session's (ClientId, RequestId, AckedBelow)."""

# Remote statuses after which another server may well succeed.
_RETRYABLE_REMOTE = frozenset(
    (RpcStatus.HANDLER_ERROR, RpcStatus.DEADLINE_EXCEEDED, RpcStatus.SHUTTING_DOWN)
)
# What the deadline error names as the last failure, per retryable code.
_RETRY_REASONS = {
    Err.WRONG_LEADER: "is not the leader",
    Err.TIMEOUT: "timed out waiting for the cluster",
    Err.STORAGE_UNAVAILABLE: "cannot persist (storage unavailable)",
}


class AsyncClerk:
    """A client of one raftkv cluster; use it as ``async with AsyncClerk(servers) as kv:``.

    ``servers`` are addresses (or a test.conf path) to start from, or shared
    :class:`Connections`. Keys and values are bytes; a str is encoded as UTF-8. ``op_timeout``
    (seconds) is each operation's default deadline, ``rpc_timeout`` bounds one ask of one
    server. ``rng`` draws the backoff jitter (a fresh unseeded Random by default); ``client_id``
    defaults to ``uuid4().bytes`` and must be unique per clerk. Create and use it on one event
    loop.
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
            self._connections = Connections(
                servers, connect_timeout=connect_timeout, rpc_timeout=rpc_timeout
            )
            self._owns_connections = True
        self.op_timeout = op_timeout
        self.rpc_timeout = rpc_timeout
        self.core = ClerkCore(
            len(self._connections.table.rotation),
            client_id if client_id is not None else uuid.uuid4().bytes,
            rng if rng is not None else random.Random(),
            policy if policy is not None else RetryPolicy(),
        )
        self._servers = ClerkServers(self._connections, self.core, rpc_timeout)
        self.history = history

    @property
    def client_id(self) -> bytes:
        """This clerk's session id (every write carries it)."""
        return self.core.client_id

    @property
    def leader(self) -> int:
        """Node index of the server this clerk currently believes leads."""
        return self.core.leader

    @property
    def servers(self) -> dict[int, Address]:
        """Every server this clerk knows, by node index (learners included)."""
        return dict(self._connections.table.addresses)

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
            reply = await self._read(KvServerRpc.Get, pb.GetArgs(Key=k, Mode=mode), k, timeout)
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
            reply = await self._read(KvServerRpc.Scan, args, args.Start, timeout)
            require_ok("scan", reply.Err)
            pairs = [(kv.Key, kv.Value) for kv in reply.Pairs]
            rec.output = [[k, v] for k, v in pairs]
            return pairs

    async def get_stale(
        self, key: Key, *, server: int | None = None, timeout: float | None = None
    ) -> StaleRead:
        """``key``'s value from one server's local state, which may be OUT OF DATE.

        Asks ``server`` (a node index) first, else the cached leader, and moves on if it fails.
        """
        args = pb.GetArgs(Key=_as_bytes(key), Mode=pb.READ_STALE)
        reply, served_by = await self._stale(KvServerRpc.Get, args, args.Key, server, timeout)
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
        reply, served_by = await self._stale(KvServerRpc.Scan, args, args.Start, server, timeout)
        require_ok("scan", reply.Err)
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

        def build(cid: bytes, rid: int, acked: int) -> pb.DeleteArgs:
            return pb.DeleteArgs(Key=k, ClientId=cid, RequestId=rid, AckedBelow=acked)

        return await self._conditional(
            self._record("delete", k, None), KvServerRpc.Delete, build, k, _NO_KEY, None, timeout
        )

    async def put_if_absent(
        self, key: Key, value: Key, *, timeout: float | None = None
    ) -> ConditionalResult:
        """Store ``value`` only if ``key`` is absent; else ``previous`` is the existing value."""
        k, v = _as_bytes(key), _as_bytes(value)

        def build(cid: bytes, rid: int, acked: int) -> pb.PutIfAbsentArgs:
            return pb.PutIfAbsentArgs(Key=k, Value=v, ClientId=cid, RequestId=rid, AckedBelow=acked)

        return await self._conditional(
            self._record("put_if_absent", k, v),
            KvServerRpc.PutIfAbsent,
            build,
            k,
            (Err.KEY_EXISTS,),
            _ABSENT,
            timeout,
        )

    async def update(
        self, key: Key, value: Key, *, timeout: float | None = None
    ) -> ConditionalResult:
        """Store ``value`` only if ``key`` is present; ``previous`` is the value it replaced."""
        k, v = _as_bytes(key), _as_bytes(value)

        def build(cid: bytes, rid: int, acked: int) -> pb.UpdateArgs:
            return pb.UpdateArgs(Key=k, Value=v, ClientId=cid, RequestId=rid, AckedBelow=acked)

        return await self._conditional(
            self._record("update", k, v), KvServerRpc.Update, build, k, _NO_KEY, None, timeout
        )

    async def cas(
        self, key: Key, expected: Key | None, new: Key, *, timeout: float | None = None
    ) -> ConditionalResult:
        """Set ``key`` to ``new`` only if it holds ``expected`` (None: only if it is absent).

        When refused, ``previous`` is the key's current value (None: absent).
        """
        k, n = _as_bytes(key), _as_bytes(new)
        e = None if expected is None else _as_bytes(expected)

        def build(cid: bytes, rid: int, acked: int) -> pb.CompareAndSwapArgs:
            return pb.CompareAndSwapArgs(
                Key=k,
                Expected=e or b"",
                ExpectAbsent=e is None,
                Value=n,
                ClientId=cid,
                RequestId=rid,
                AckedBelow=acked,
            )

        # The checker's cas never matches an absent key; expecting absence is put_if_absent.
        recording = (
            self._record("put_if_absent", k, n) if e is None else self._record("cas", k, [e, n])
        )
        refusals = (Err.CAS_MISMATCH, Err.NO_KEY)
        return await self._conditional(
            recording, KvServerRpc.CompareAndSwap, build, k, refusals, (e,), timeout
        )

    async def _put_append(
        self, op: bytes, name: str, key: Key, value: Key, timeout: float | None
    ) -> None:
        k, v = _as_bytes(key), _as_bytes(value)

        def build(cid: bytes, rid: int, acked: int) -> pb.PutAppendArgs:
            return pb.PutAppendArgs(
                Key=k, Value=v, Op=op, ClientId=cid, RequestId=rid, AckedBelow=acked
            )

        with self._record(name, k, v):
            reply = await self._write(KvServerRpc.PutAppend, build, k, timeout)
            require_ok(name, reply.Err)

    async def _conditional(
        self,
        recording: Recording | NotRecording,
        rpc: Rpc[A, V],
        build: Build[A],
        key: bytes,
        refusals: tuple[Err, ...],
        ok_previous: tuple[bytes | None] | None,
        timeout: float | None,
    ) -> ConditionalResult:
        """The one path of delete, put_if_absent, update and cas: ``ok_previous`` is the value an
        applied write replaced when the clerk knows it, None when the reply's Value is it."""
        with recording as rec:
            reply = await self._write(rpc, build, key, timeout)
            previous = reply.Value if ok_previous is None else ok_previous[0]
            result = conditional(
                _OPERATIONS[rpc.method],
                reply.Err,
                reply.Value,
                ok_previous=previous,
                refusals=refusals,
            )
            rec.output = result.applied
            return result

    # -- the retry loop ------------------------------------------------------------------------

    async def _read(self, rpc: Rpc[A, R], args: A, key: bytes, timeout: float | None) -> R:
        attempt = self._servers.start()
        reply = await self._ask_until_answered(rpc, lambda: args, key, attempt, timeout)
        attempt.on_success()
        return reply

    async def _stale(
        self,
        rpc: Rpc[A, R],
        args: A,
        key: bytes,
        server: int | None,
        timeout: float | None,
    ) -> tuple[R, int]:
        attempt = self._servers.start()
        if server is not None:
            known = sorted(self._connections.table.addresses)
            if server not in known:
                names = ", ".join(map(str, known))
                raise ValueError(f"server index {server} is not a known server ({names})")
            attempt.server = server
        reply = await self._ask_until_answered(rpc, lambda: args, key, attempt, timeout)
        # Any server answers a stale read: the leader cache learns nothing from it.
        return reply, attempt.server

    async def _write(self, rpc: Rpc[A, W], build: Build[A], key: bytes, timeout: float | None) -> W:
        """Ask until the write is answered; ErrSessionExpired renews the session and raises,
        except when the refused copy was the only one sent: then it provably had no effect and
        goes once more, as the new session's request."""
        loop = asyncio.get_running_loop()
        budget = self.op_timeout if timeout is None else timeout
        deadline = loop.time() + budget
        session = self.core.session
        reply, attempt = await self._write_in(session, rpc, build, key, budget)
        if reply.Err == Err.SESSION_EXPIRED.wire:
            session = self.core.renew_session(session, uuid.uuid4().bytes)
            remaining = deadline - loop.time()
            if attempt.asks > 1 or remaining <= 0:
                raise SessionExpiredError(rpc.method, outcome_unknown=attempt.asks > 1)
            reply, attempt = await self._write_in(session, rpc, build, key, remaining)
            if reply.Err == Err.SESSION_EXPIRED.wire:
                self.core.renew_session(session, uuid.uuid4().bytes)
                raise SessionExpiredError(rpc.method, outcome_unknown=attempt.asks > 1)
        attempt.on_success()
        return reply

    async def _write_in(
        self,
        session: ClerkSession,
        rpc: Rpc[A, W],
        build: Build[A],
        key: bytes,
        timeout: float,
    ) -> tuple[W, Attempt]:
        request_id = session.new_request_id()
        attempt = self._servers.start()
        try:
            # Rebuilt per ask with the SAME request id: only the acknowledgement mark may rise.
            reply = await self._ask_until_answered(
                rpc,
                lambda: build(session.client_id, request_id, session.acked_below()),
                key,
                attempt,
                timeout,
            )
        finally:
            # Answered or abandoned, this clerk will not send the id again.
            session.finish(request_id)
        return reply, attempt

    async def _ask_until_answered(
        self,
        rpc: Rpc[A, R],
        build: Callable[[], A],
        key: bytes,
        attempt: Attempt,
        timeout: float | None,
    ) -> R:
        """Ask servers as ``attempt`` directs until one gives a final answer (any code not
        marked retryable), or time runs out."""
        loop = asyncio.get_running_loop()
        budget = self.op_timeout if timeout is None else timeout
        if budget <= 0:
            raise ValueError(f"timeout must be positive, not {budget}")
        deadline = loop.time() + budget
        last_error = "no server was asked"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise timeout_error(rpc.method, key, budget, attempt.asks - 1, last_error)
            address = self._servers.aim(attempt)
            bound = min(self.rpc_timeout, remaining)
            try:
                channel = self._connections.channel(address)
                reply = await rpc.call(channel, build(), timeout=bound)
            except (RpcTimeoutError, RpcConnectionError) as exc:
                # An ask the operation's deadline cut short says nothing about the server: the
                # error keeps naming the last real failure.
                cut_short = isinstance(exc, RpcTimeoutError) and bound < self.rpc_timeout
                if not cut_short or attempt.asks <= 1:
                    last_error = f"node{attempt.server} ({format_address(address)}): {exc}"
                delay = await self._servers.next_server(attempt, None, deadline)
            except RpcRemoteError as exc:
                if exc.status not in _RETRYABLE_REMOTE:
                    raise RpcRefusedError(rpc.method, f"{exc.status.name}: {exc.text}") from exc
                last_error = f"node{attempt.server} ({format_address(address)}): {exc}"
                delay = await self._servers.next_server(attempt, None, deadline)
            else:
                err = Err.from_wire(reply.Err)
                if not isinstance(err, Err) or not err.retryable:
                    return reply
                last_error = f"node{attempt.server} {_RETRY_REASONS[err]}"
                hint = hint_from_raft_id(reply.LeaderHint) if err is Err.WRONG_LEADER else None
                delay = await self._servers.next_server(attempt, hint, deadline)
            if delay:
                await asyncio.sleep(min(delay / 1000.0, max(0.0, deadline - loop.time())))

    def _record(self, op: str, key: bytes, value: Recordable) -> Recording | NotRecording:
        return record(self.history, self.client_id, op, key, value)


# The clerk's name of each conditional write, for its errors.
_OPERATIONS = {
    "Delete": "delete",
    "PutIfAbsent": "put_if_absent",
    "Update": "update",
    "CompareAndSwap": "cas",
}
_NO_KEY = (Err.NO_KEY,)
_ABSENT: tuple[bytes | None] = (None,)


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
