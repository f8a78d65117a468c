"""The kvServerRpc service: client RPCs in, work for the node's Replica out, answers back.

Theory of operation
-------------------
:class:`KVService` holds one handler per method of ``kvServerRpc`` (kvserver_rpc.proto) for
:class:`rpc.RpcProvider`. A write becomes a :class:`~kvserver.kvcommand_pb2.Command`, stamped
with the node's wall clock (``clock_ms``: it drives session expiry, identically on every node
because the stamp travels in the log; a jump of this clock moves the session clock by at most one
bound, docs/sessions.md), and is proposed through :meth:`Replica.propose`; a read becomes a
query that :meth:`Replica.read` runs at a linearizable point (or at once, for a stale read). The
Replica answers through a :class:`FutureWaiter`, which completes an asyncio Future the handler
awaits. After handing work to the Replica the handler calls ``wakeup`` so the node's runner
processes the Raft output (``Replica.handle_ready``) soon; the runner should coalesce wakeups.

Threading: the handlers, the Replica and the runner all live on one event loop thread. The
handlers touch the Replica only through ``propose``/``read`` and read the leader's id for hints.

Every wait is bounded by ``request_timeout`` (the original waited 500 ms): a request that is not
answered in time gets ``ErrTimeout``. Its outcome is then unknown to the client, which retries
with the SAME RequestId; the session table makes the retry exactly-once. The deadlines are kept
in arrival order (they all share one timeout, so that order is deadline order) and one timer
expires them from the front, instead of a timer per request. A write whose entry was
overwritten by another leader, or a read on a replica that is not (or stops being) leader, gets
``ErrWrongLeader`` with the leader's Raft id as ``LeaderHint`` (0 when unknown).

Read modes: a stale read is served at once from local state on any replica and labelled
``READ_STALE`` in the reply. Other reads go through ReadIndex; whether the leader then uses its
lease (:mod:`raftcore.lease`) is the node's Raft configuration (``ReadOnlyOption``), so the
service is told ``lease_reads`` and labels those replies ``READ_LEASE``. A lease read asked of a
node that does not use leases is served the stronger way and labelled ``READ_LINEARIZABLE``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from kvapi import kvserver_rpc_pb2 as pb
from kvapi.codes import Err
from kvapi.stubs import KvServerRpc
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.replica import Replica
from kvserver.state_machine import KVStateMachine
from rpc import RpcController, RpcProvider

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "FutureWaiter",
    "KVService",
    "Rejected",
]

DEFAULT_REQUEST_TIMEOUT = 0.5

T = TypeVar("T")

_ValueReply = TypeVar(
    "_ValueReply", pb.DeleteReply, pb.PutIfAbsentReply, pb.UpdateReply, pb.CompareAndSwapReply
)
"""The replies of the conditional writes: Err, the Value the write saw, LeaderHint."""

_PUT_APPEND_OPS = {b"Put": Op.OP_PUT, b"Append": Op.OP_APPEND}
_READ_MODES = frozenset((pb.READ_LINEARIZABLE, pb.READ_LEASE, pb.READ_STALE))


class Rejected(Exception):
    """The Replica refused or abandoned a request; ``err`` is the Err string to answer."""

    def __init__(self, err: str) -> None:
        super().__init__(err)
        self.err = err


class FutureWaiter(Generic[T]):
    """A :class:`kvserver.replica.Waiter` that completes an asyncio Future.

    ``resolve`` sets the result, ``reject`` sets :class:`Rejected`. Once the future is done
    (answered, or cancelled because its handler gave up) later calls are ignored. Call only
    from the future's event loop thread.
    """

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[T]) -> None:
        self.future = future

    def resolve(self, value: T) -> None:
        """Complete the future with ``value``."""
        if not self.future.done():
            self.future.set_result(value)

    def reject(self, err: str) -> None:
        """Fail the future with ``Rejected(err)``."""
        if not self.future.done():
            self.future.set_exception(Rejected(err))


class _WriteArgs(Protocol):
    """What every write request carries for the session table."""

    @property
    def ClientId(self) -> bytes: ...
    @property
    def RequestId(self) -> int: ...
    @property
    def AckedBelow(self) -> int: ...


class _BadRequest(Exception):
    """Arguments no server could execute: answered ``ErrBadRequest`` without touching Raft."""


class KVService:
    """The handlers of ``kvServerRpc`` for one node, on top of its :class:`Replica`.

    ``clock_ms`` is the node's wall clock in ms (stamped into every write); ``wakeup`` tells the
    runner there is Raft work to process. ``request_timeout`` (seconds) bounds each request's
    wait; ``lease_reads`` says the node's Raft core is configured for lease-based reads.
    """

    def __init__(
        self,
        replica: Replica,
        clock_ms: Callable[[], int],
        wakeup: Callable[[], None],
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        lease_reads: bool = False,
    ) -> None:
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be positive, not {request_timeout}")
        self.replica = replica
        self.clock_ms = clock_ms
        self.wakeup = wakeup
        self.request_timeout = request_timeout
        self.lease_reads = lease_reads
        # (deadline, future) of every waiting request, oldest first; one timer sweeps them.
        self._waiting: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._sweep_timer: asyncio.TimerHandle | None = None

    def register(self, provider: RpcProvider) -> None:
        """Serve ``kvServerRpc`` on ``provider`` with these handlers (mypy checks them against
        :class:`kvapi.stubs.KvServerRpcHandlers`)."""
        KvServerRpc.serve(provider, self)

    # -- the original's methods ----------------------------------------------------------------

    async def PutAppend(
        self, request: pb.PutAppendArgs, controller: RpcController
    ) -> pb.PutAppendReply:
        """Put or Append (``Op``); exactly once per (ClientId, RequestId)."""
        op = _PUT_APPEND_OPS.get(request.Op)
        if op is None:
            return pb.PutAppendReply(Err=Err.BAD_REQUEST.wire, LeaderHint=self._hint())
        err, _ = await self._write(request, Command(op=op, key=request.Key, value=request.Value))
        return pb.PutAppendReply(Err=err, LeaderHint=self._hint())

    async def Get(self, request: pb.GetArgs, controller: RpcController) -> pb.GetReply:
        """The value of ``Key`` (``ErrNoKey`` and an empty value if absent)."""
        key = request.Key
        err, value, served = await self._read(lambda m: m.get(key), request.Mode)
        if err == Err.OK and value is None:
            err = Err.NO_KEY
        return pb.GetReply(
            Err=err.encode(), Value=value or b"", LeaderHint=self._hint(), ServedMode=served
        )

    # -- the new operations --------------------------------------------------------------------

    async def Delete(self, request: pb.DeleteArgs, controller: RpcController) -> pb.DeleteReply:
        """Remove ``Key``; the reply's Value is the removed value."""
        command = Command(op=Op.OP_DELETE, key=request.Key)
        return await self._conditional(request, command, pb.DeleteReply)

    async def PutIfAbsent(
        self, request: pb.PutIfAbsentArgs, controller: RpcController
    ) -> pb.PutIfAbsentReply:
        """Store ``Value`` only if ``Key`` is absent (else ErrKeyExists with the existing value)."""
        command = Command(op=Op.OP_PUT_IF_ABSENT, key=request.Key, value=request.Value)
        return await self._conditional(request, command, pb.PutIfAbsentReply)

    async def Update(self, request: pb.UpdateArgs, controller: RpcController) -> pb.UpdateReply:
        """Store ``Value`` only if ``Key`` is present (the reply's Value: the previous value)."""
        command = Command(op=Op.OP_UPDATE, key=request.Key, value=request.Value)
        return await self._conditional(request, command, pb.UpdateReply)

    async def CompareAndSwap(
        self, request: pb.CompareAndSwapArgs, controller: RpcController
    ) -> pb.CompareAndSwapReply:
        """Store ``Value`` only if ``Key`` holds ``Expected`` (or is absent, with ExpectAbsent)."""
        command = Command(
            op=Op.OP_CAS,
            key=request.Key,
            value=request.Value,
            expected=request.Expected,
            expect_absent=request.ExpectAbsent,
        )
        return await self._conditional(request, command, pb.CompareAndSwapReply)

    async def Scan(self, request: pb.ScanArgs, controller: RpcController) -> pb.ScanReply:
        """The pairs with ``Start <= key < End`` (End empty: unbounded), at most ``Limit``."""
        start, end = request.Start, request.End or None
        limit = request.Limit or None

        def query(machine: KVStateMachine) -> list[tuple[bytes, bytes]]:
            return machine.scan(start, end, limit)

        err, pairs, served = await self._read(query, request.Mode)
        return pb.ScanReply(
            Err=err.encode(),
            Pairs=[pb.KeyValue(Key=k, Value=v) for k, v in pairs or ()],
            LeaderHint=self._hint(),
            ServedMode=served,
        )

    # -- the common paths ----------------------------------------------------------------------

    def _hint(self) -> int:
        return self.replica.leader_hint

    async def _conditional(
        self, request: _WriteArgs, command: Command, reply_type: type[_ValueReply]
    ) -> _ValueReply:
        """Propose ``command`` for ``request``'s session; the reply its result makes."""
        err, value = await self._write(request, command)
        return reply_type(Err=err, Value=value, LeaderHint=self._hint())

    async def _write(self, request: _WriteArgs, command: Command) -> tuple[bytes, bytes]:
        """Propose ``command`` for ``request``'s ClientId and RequestId; its (Err, Value)."""
        try:
            _check_session(request.ClientId, request.RequestId, request.AckedBelow)
        except _BadRequest:
            return Err.BAD_REQUEST.wire, b""
        command.client_id = request.ClientId
        command.request_id = request.RequestId
        command.acked_below = request.AckedBelow
        command.now_ms = self.clock_ms()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.replica.propose(command, FutureWaiter(future))
        self.wakeup()
        try:
            result = await self._bounded(future)
        except Rejected as exc:
            return exc.err.encode(), b""
        return result.err.encode(), result.value

    async def _read(
        self, query: Callable[[KVStateMachine], T], mode: pb.ReadMode
    ) -> tuple[str, T | None, pb.ReadMode]:
        """Run ``query`` as ``mode`` asks: (Err, value or None on error, mode served)."""
        if mode not in _READ_MODES:
            return Err.BAD_REQUEST, None, pb.READ_LINEARIZABLE
        stale = mode == pb.READ_STALE
        served = (
            pb.READ_STALE if stale else pb.READ_LEASE if self.lease_reads else pb.READ_LINEARIZABLE
        )
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.replica.read(query, FutureWaiter(future), stale=stale)
        if not stale:
            self.wakeup()
        try:
            value = await self._bounded(future)
        except Rejected as exc:
            return exc.err, None, served
        return Err.OK, value, served

    async def _bounded(self, future: asyncio.Future[T]) -> T:
        """The future's value; Rejected(ErrTimeout) when ``request_timeout`` passes first."""
        loop = asyncio.get_running_loop()
        self._waiting.append((loop.time() + self.request_timeout, future))
        if self._sweep_timer is None:
            self._sweep_timer = loop.call_later(self.request_timeout, self._expire_overdue)
        return await future

    def _expire_overdue(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = self._waiting
        while waiting and (waiting[0][0] <= now or waiting[0][1].done()):
            future = waiting.popleft()[1]
            if not future.done():
                future.set_exception(Rejected(Err.TIMEOUT))
        self._sweep_timer = loop.call_at(waiting[0][0], self._expire_overdue) if waiting else None


def _check_session(client_id: bytes, request_id: int, acked_below: int) -> None:
    """Refuse writes the session table cannot make exactly-once."""
    if not client_id:
        raise _BadRequest("a write needs a ClientId")
    if request_id <= 0:
        raise _BadRequest("a write needs a positive RequestId")
    if not 0 <= acked_below <= request_id:
        raise _BadRequest("AckedBelow must be in [0, RequestId]")
