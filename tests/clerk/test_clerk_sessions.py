"""ErrSessionExpired at the clerk: a typed error, never a retry as if the write were fresh.

The services stamp writes with a clock the test moves, and the state machines expire a session
after 10 s of it; another client's writes, stamped one second apart, age the table (the session
clock moves at most one second per entry, so nothing else would make a session expire).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from clerk import (
    AsyncClerk,
    Clerk,
    ClerkError,
    OperationTimeoutError,
    RetryPolicy,
    ServerError,
    SessionExpiredError,
)
from kvapi import kvserver_rpc_pb2 as pb
from kvserver.service import KVService
from lincheck import HistoryRecorder, Status
from rpc import RpcController
from tests.clerk.clerk_testkit import LocalCluster, local_cluster, run

IDLE_MS = 10_000
FAST = RetryPolicy(initial_backoff_ms=5, max_backoff_ms=50)


class Clock:
    """The wall clock every service stamps writes with (ms), moved by the test."""

    def __init__(self) -> None:
        self.now = 1_764_000_000_000

    def __call__(self) -> int:
        return self.now


class Ager:
    """Writes as another client, one second of stamps apart, until every idle session expired."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.next_id = 1

    async def age(self, service: KVService) -> None:
        for _ in range(IDLE_MS // 1000 + 2):
            self.clock.now += 1000
            rid = self.next_id
            self.next_id += 1
            args = pb.PutAppendArgs(
                Key=b"ager", Value=b".", Op=b"Put", ClientId=b"ager", RequestId=rid, AckedBelow=rid
            )
            reply = await service.PutAppend(args, RpcController())
            assert reply.Err == b"OK"


class _ExpireThenLoseReply:
    """Wraps a KVService: the first ``y`` append runs, then every session idle since ages out
    before its reply is lost, so the clerk's retry finds its session gone."""

    def __init__(self, inner: KVService, ager: Ager) -> None:
        self.inner = inner
        self.ager = ager
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def PutAppend(self, request: pb.PutAppendArgs, controller: RpcController) -> Any:
        reply = await self.inner.PutAppend(request, controller)
        if request.Value == b"y" and reply.Err == b"OK" and not self.lost:
            self.lost += 1
            await self.ager.age(self.inner)
            await asyncio.sleep(60)  # the clerk's RPC deadline cancels this: a lost reply
        return reply


def cluster_options(clock: Clock, **more: Any) -> dict[str, Any]:
    return {"clock_ms": clock, "session_max_idle_ms": IDLE_MS, **more}


def leader_service(cluster: LocalCluster) -> KVService:
    leader = cluster.leader()
    assert leader is not None
    return cluster.services[leader]


def test_a_retry_whose_session_expired_raises_a_typed_error_and_is_not_executed_again() -> None:
    clock = Clock()
    ager = Ager(clock)
    history = HistoryRecorder()
    wrappers: list[_ExpireThenLoseReply] = []

    def wrap(i: int, service: KVService) -> object:
        wrappers.append(_ExpireThenLoseReply(service, ager))
        return wrappers[-1]

    async def main() -> None:
        async with local_cluster(**cluster_options(clock, wrap=wrap)) as cluster:
            kv = AsyncClerk(
                cluster.addresses,
                policy=FAST,
                rng=random.Random(3),
                rpc_timeout=0.5,
                op_timeout=8.0,
                history=history,
            )
            async with kv:
                await kv.append("k", "x")
                first_session = kv.client_id
                with pytest.raises(SessionExpiredError) as info:
                    await kv.append("k", "y")
                error = info.value
                assert not isinstance(error, ServerError)
                assert isinstance(error, ClerkError)
                assert error.outcome_unknown
                assert error.err == "ErrSessionExpired"
                assert "UNKNOWN" in str(error) and "not executed again" in str(error)
                assert sum(w.lost for w in wrappers) == 1
                # Applied once, before the session expired; the retry was refused.
                assert await kv.get("k") == b"xy"
                # The clerk has a new session and goes on with it.
                assert kv.client_id != first_session
                await kv.append("k", "z")
                assert await kv.get("k") == b"xyz"

    run(main())
    statuses = [(op.op.value, op.value, op.status) for op in history.history()]
    assert statuses[:2] == [("append", "x", Status.OK), ("append", "y", Status.UNKNOWN)]


def test_a_first_ask_refused_after_idle_expiry_goes_again_in_a_new_session() -> None:
    """The refused copy was the only one sent, so the write provably had no effect: the clerk
    starts a new session and sends it once more there, and it applies once."""
    clock = Clock()
    ager = Ager(clock)
    history = HistoryRecorder()

    async def main() -> None:
        async with local_cluster(**cluster_options(clock)) as cluster:
            kv = AsyncClerk(cluster.addresses, policy=FAST, rng=random.Random(3), history=history)
            async with kv:
                await kv.append("k", "x")
                await kv.append("k", "y")
                first_session = kv.client_id
                await ager.age(leader_service(cluster))
                await kv.append("k", "z")
                assert kv.client_id != first_session
                assert kv.core.session.acked_below() == 2  # the new session's request 1
                assert await kv.get("k") == b"xyz"

    run(main())
    assert all(op.status is Status.OK for op in history.history())


def test_a_refusal_is_never_taken_for_a_timeout_or_retried_until_the_deadline() -> None:
    """Even with a long deadline, the refused retry raises at once (not OperationTimeoutError
    after the clerk kept asking), and the blocking Clerk raises the same typed error."""
    clock = Clock()
    ager = Ager(clock)
    wrappers: list[_ExpireThenLoseReply] = []

    def wrap(i: int, service: KVService) -> object:
        wrappers.append(_ExpireThenLoseReply(service, ager))
        return wrappers[-1]

    async def serve(stop: asyncio.Event, addresses: asyncio.Future[list[tuple[str, int]]]) -> None:
        async with local_cluster(**cluster_options(clock, wrap=wrap)) as cluster:
            addresses.set_result(cluster.addresses)
            await stop.wait()

    async def main() -> None:
        stop = asyncio.Event()
        addresses: asyncio.Future[list[tuple[str, int]]] = (
            asyncio.get_running_loop().create_future()
        )
        server = asyncio.create_task(serve(stop, addresses))
        servers = await addresses

        def blocking() -> float:
            with Clerk(servers, policy=FAST, rpc_timeout=0.5, op_timeout=30.0) as kv:
                kv.append("k", "x")
                start = time.monotonic()
                with pytest.raises(SessionExpiredError) as info:
                    kv.append("k", "y")
                elapsed = time.monotonic() - start
                assert not isinstance(info.value, OperationTimeoutError)
                assert kv.get("k") == b"xy"
                return elapsed

        try:
            elapsed = await asyncio.to_thread(blocking)
            assert elapsed < 10.0  # far below the 30 s deadline: no retry loop after the refusal
        finally:
            stop.set()
            await server

    run(main(), timeout=40)
