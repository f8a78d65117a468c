"""A simulated client: :class:`clerk.core.ClerkCore` driven in virtual time over ``Port.call``.

Theory of operation
-------------------
Each operation is a process step (use it with ``yield from``). It asks the server the core's
:class:`~clerk.core.Attempt` names, waits for the call to end (a reply, or ``None`` on loss,
unreachability or the per-ask timeout), and lets the core choose the next server and the pause
before asking it: the leader hint of a wrong-leader reply, else the next server; a capped,
jittered backoff after every server failed once. A write keeps its RequestId across every retry,
so the servers' session table applies it once however many copies reach the log.

Every operation is recorded in the cluster's :class:`lincheck.HistoryRecorder` from its call to
its final answer. An operation still unanswered at its deadline raises
:class:`OperationTimeout` and is recorded ``unknown`` if it was a write (it may yet take effect;
its RequestId stays outstanding in the core so the servers keep its cached reply) or ``fail``
if it was a Get (reads change nothing).

Sessions as the asyncio clerk keeps them: a write refused ``ErrSessionExpired`` renews the core's
session; it goes once more in the new session only if the refused copy was the only one sent,
else it raises :class:`SessionExpired` (recorded ``unknown``: an earlier copy may have applied).
With ``legacy`` options the clerk sends AckedBelow 0 like the original C++ clerk (one write at a
time, so its RequestId is its mark), and the servers never refuse it that way.
"""

from __future__ import annotations

from dataclasses import dataclass

from clerk.core import ClerkCore, ClerkSession
from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.testing.wire import decode_reply, encode_get, encode_write
from lincheck import ClientId, HistoryRecorder, OpKind, Status, bytes_to_str
from raftcore.testing.network import Port
from raftcore.testing.process import Proc, Signal
from raftcore.testing.scheduler import MS, Scheduler

__all__ = ["ClerkOptions", "OperationTimeout", "SessionExpired", "SimClerk", "UnexpectedReply"]


@dataclass(frozen=True)
class ClerkOptions:
    """Time limits of a simulated clerk, in virtual milliseconds."""

    attempt_timeout_ms: int = 1000
    """How long one ask waits for its reply before the clerk tries the next server."""
    op_deadline_ms: int = 30_000
    """How long one operation may take in all before it gives up (outcome then unknown)."""
    legacy: bool = False
    """Send AckedBelow 0, as the original C++ clerk does."""

    def __post_init__(self) -> None:
        if self.attempt_timeout_ms <= 0 or self.op_deadline_ms <= 0:
            raise ValueError("clerk time limits must be positive")


class OperationTimeout(Exception):
    """An operation got no final answer before its deadline; a write's outcome is unknown."""


class SessionExpired(Exception):
    """The servers refused a retried write with ErrSessionExpired; its outcome is unknown."""


class UnexpectedReply(AssertionError):
    """A server answered with an error no correct server gives to this clerk's requests."""


class SimClerk:
    """One client of a simulated cluster; made by :meth:`KVCluster.make_clerk`."""

    def __init__(
        self,
        scheduler: Scheduler,
        port: Port,
        core: ClerkCore,
        servers: list[int],
        recorder: HistoryRecorder,
        name: ClientId,
        options: ClerkOptions,
    ) -> None:
        """``servers[k]`` is the network address (Raft id) of the core's server index ``k``."""
        self._scheduler = scheduler
        self.port = port
        self.core = core
        self.servers = servers
        self._index_of = {server: k for k, server in enumerate(servers)}
        self._recorder = recorder
        self.name = name
        self.options = options

    @property
    def address(self) -> int:
        """This client's network address (to name it in a partition)."""
        return self.port.address

    # -- operations -----------------------------------------------------------------------------

    def get(self, key: bytes) -> Proc[bytes | None]:
        """Linearizable Get: the value, or None if the key is absent."""
        handle = self._recorder.call(self.name, OpKind.GET, bytes_to_str(key))
        result, _ = yield from self._ask(encode_get(key))
        if result is None:
            self._recorder.ret(handle, status=Status.FAIL)
            raise OperationTimeout(f"client {self.name}: get({key!r}) got no answer in time")
        if result.err == Err.NO_KEY:
            self._recorder.ret(handle, None)
            return None
        if result.err != Err.OK:
            raise UnexpectedReply(f"client {self.name}: get({key!r}) answered {result.err!r}")
        self._recorder.ret(handle, bytes_to_str(result.value))
        return result.value

    def put(self, key: bytes, value: bytes) -> Proc[None]:
        """Set ``key`` to ``value``, exactly once."""
        yield from self._write(Op.OP_PUT, OpKind.PUT, key, value)

    def append(self, key: bytes, value: bytes) -> Proc[None]:
        """Append ``value`` to ``key`` (a missing key counts as empty), exactly once."""
        yield from self._write(Op.OP_APPEND, OpKind.APPEND, key, value)

    def _write(self, op: Op, kind: OpKind, key: bytes, value: bytes) -> Proc[None]:
        core = self.core
        handle = self._recorder.call(self.name, kind, bytes_to_str(key), bytes_to_str(value))
        session = core.session
        result, asks, request_id = yield from self._send(session, handle, op, kind, key, value)
        if result.err == Err.SESSION_EXPIRED and asks == 1:
            # The only copy sent was refused unexecuted: send it once more in a new session.
            session = core.renew_session(session, core.rng.randbytes(16))
            result, asks, request_id = yield from self._send(session, handle, op, kind, key, value)
        if result.err == Err.SESSION_EXPIRED:
            core.renew_session(session, core.rng.randbytes(16))
            self._recorder.ret(handle, status=Status.UNKNOWN if asks > 1 else Status.FAIL)
            raise SessionExpired(
                f"client {self.name}: {kind}({key!r}, {value!r}) request {request_id} "
                f"refused {Err.SESSION_EXPIRED} after {asks} asks"
            )
        if result.err != Err.OK:
            raise UnexpectedReply(
                f"client {self.name}: {kind}({key!r}) request {request_id} answered {result.err!r}"
            )
        self._recorder.ret(handle, None)

    def _send(
        self, session: ClerkSession, handle: int, op: Op, kind: OpKind, key: bytes, value: bytes
    ) -> Proc[tuple[Result, int, int]]:
        """One write under a fresh id of ``session``: (its answer, asks sent, the id)."""
        request_id = session.new_request_id()
        command = Command(
            client_id=session.client_id,
            request_id=request_id,
            acked_below=0 if self.options.legacy else session.acked_below(),
            op=op,
            key=key,
            value=value,
        )
        result, asks = yield from self._ask(encode_write(command))
        if result is None:
            self._recorder.ret(handle, status=Status.UNKNOWN)
            raise OperationTimeout(
                f"client {self.name}: {kind}({key!r}, {value!r}) got no answer in time; "
                "it may or may not take effect"
            )
        session.finish(request_id)
        return result, asks, request_id

    # -- the retry walk -------------------------------------------------------------------------

    def _call(self, server: int, request: bytes, timeout: int) -> Signal[bytes | None]:
        done: Signal[bytes | None] = Signal()
        self.port.call(server, request, done.fire, timeout)
        return done

    def _ask(self, request: bytes) -> Proc[tuple[Result | None, int]]:
        """Ask servers until one answers as leader: (the answer, or None once the deadline
        passed; the number of asks sent)."""
        scheduler = self._scheduler
        deadline = scheduler.now + self.options.op_deadline_ms * MS
        attempt_timeout = self.options.attempt_timeout_ms * MS
        attempt = self.core.start()
        while True:
            timeout = min(attempt_timeout, deadline - scheduler.now)
            raw = yield self._call(self.servers[attempt.server], request, timeout)
            if raw is None:
                delay = attempt.on_failure()
            else:
                reply = decode_reply(raw)
                if reply.result.err != Err.WRONG_LEADER:
                    attempt.on_success()
                    return reply.result, attempt.asks
                delay = attempt.on_wrong_leader(self._index_of.get(reply.leader_hint))
            if scheduler.now + delay * MS >= deadline:
                return None, attempt.asks
            if delay:
                yield delay * MS
