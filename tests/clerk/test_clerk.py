"""AsyncClerk and Clerk against an in-process 3-replica cluster over real RPC."""

from __future__ import annotations

import asyncio
import random
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from clerk import (
    AsyncClerk,
    Clerk,
    ConditionalResult,
    Connections,
    OperationTimeoutError,
    RetryPolicy,
    ServerError,
    StaleRead,
    StaleScan,
)
from examples import friend_pb2
from examples.provider import FriendService
from kvapi import kvserver_rpc_pb2 as pb
from kvserver.service import KVService
from lincheck import HistoryRecorder, Status, assert_linearizable
from rpc import RpcController, RpcProvider
from tests.clerk.clerk_testkit import Counting, LocalCluster, local_cluster, run

FAST = RetryPolicy(initial_backoff_ms=5, max_backoff_ms=50)


def clerk_for(cluster: LocalCluster, **options: Any) -> AsyncClerk:
    options.setdefault("policy", FAST)
    options.setdefault("rng", random.Random(3))
    options.setdefault("op_timeout", 8.0)
    return AsyncClerk(cluster.addresses, **options)


def test_put_get_append_and_the_new_operations() -> None:
    async def main() -> None:
        async with local_cluster() as cluster, clerk_for(cluster) as kv:
            assert await kv.get("x") is None
            await kv.put("x", "1")
            await kv.append("x", "2")
            await kv.append(b"y", b"\x00\xff")
            assert await kv.get("x") == b"12"
            assert await kv.get(b"y") == b"\x00\xff"
            assert await kv.get("x", lease=True) == b"12"

            assert await kv.put_if_absent("p", "a") == ConditionalResult(True, None)
            assert await kv.put_if_absent("p", "b") == ConditionalResult(False, b"a")
            assert await kv.update("p", "c") == ConditionalResult(True, b"a")
            assert await kv.update("q", "c") == ConditionalResult(False, None)
            assert await kv.cas("p", "zz", "d") == ConditionalResult(False, b"c")
            assert await kv.cas("p", "c", "d") == ConditionalResult(True, b"c")
            assert await kv.cas("q", "c", "d") == ConditionalResult(False, None)
            assert await kv.cas("q", None, "e") == ConditionalResult(True, None)
            assert await kv.cas("q", None, "f") == ConditionalResult(False, b"e")
            assert await kv.cas("e", "", "x") == ConditionalResult(False, None)
            await kv.put("e", "")
            assert await kv.cas("e", "", "x") == ConditionalResult(True, b"")

            assert await kv.scan() == [
                (b"e", b"x"),
                (b"p", b"d"),
                (b"q", b"e"),
                (b"x", b"12"),
                (b"y", b"\x00\xff"),
            ]
            assert await kv.scan("p", "x") == [(b"p", b"d"), (b"q", b"e")]
            assert await kv.scan(limit=2, lease=True) == [(b"e", b"x"), (b"p", b"d")]
            assert await kv.delete("p") == ConditionalResult(True, b"d")
            assert await kv.delete("p") == ConditionalResult(False, None)
            assert await kv.get("p") is None

    run(main())


def test_bad_arguments_are_refused_locally() -> None:
    async def main() -> None:
        async with local_cluster() as cluster, clerk_for(cluster) as kv:
            with pytest.raises(TypeError, match="bytes or str"):
                await kv.put(1, "x")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="limit"):
                await kv.scan(limit=0)
            with pytest.raises(ValueError, match="end=None"):
                await kv.scan("a", "")
            with pytest.raises(ValueError, match="server index"):
                await kv.get_stale("x", server=3)
            with pytest.raises(ValueError, match="timeout"):
                await kv.get("x", timeout=0)
        # Refused before anything was sent: recorded as certainly without effect.
        history = HistoryRecorder()
        async with AsyncClerk([("127.0.0.1", 1)], history=history) as kv:
            with pytest.raises(ValueError, match="timeout"):
                await kv.put("x", "y", timeout=-1)
        assert [op.status for op in history.history()] == [Status.FAIL]

    with pytest.raises(ValueError, match="at least one server"):
        AsyncClerk([])
    with pytest.raises(ValueError, match=r"bad server address '127\.0\.0\.1':0"):
        AsyncClerk([("127.0.0.1", 0)])
    with pytest.raises(ValueError, match="positive"):
        AsyncClerk([("127.0.0.1", 1)], op_timeout=0)

    run(main())


def test_client_ids_are_unique_and_request_ids_increase() -> None:
    a, b = AsyncClerk([("127.0.0.1", 1)]), AsyncClerk([("127.0.0.1", 1)])
    assert a.client_id != b.client_id
    assert len(a.client_id) == 16

    async def main() -> None:
        async with local_cluster() as cluster, clerk_for(cluster) as kv:
            await kv.put("k", "1")
            await kv.append("k", "2")
            await kv.get("k")  # reads take no request id
            await kv.delete("k")
            assert kv.core.new_request_id() == 4

    run(main())


def test_clerks_sharing_connections_keep_their_own_sessions() -> None:
    """Many clerks multiplexed on shared Connections: each write still applies exactly once
    under its own ClientId, and closing one clerk leaves the shared channels to the others."""

    async def main() -> None:
        async with local_cluster() as cluster, Connections(cluster.addresses) as shared:
            clerks = [AsyncClerk(shared, policy=FAST, op_timeout=8.0) for _ in range(8)]
            assert len({kv.client_id for kv in clerks}) == 8

            async def appends(i: int, kv: AsyncClerk) -> None:
                for k in range(5):
                    await kv.append(f"key{i}", f"{k},")

            await asyncio.gather(*(appends(i, kv) for i, kv in enumerate(clerks)))
            await clerks[0].close()
            for i, kv in enumerate(clerks[1:], start=1):
                assert await kv.get(f"key{i}") == b"0,1,2,3,4,"
            assert await clerks[1].get("key0") == b"0,1,2,3,4,"
            assert all(kv.core.new_request_id() == 6 for kv in clerks)

    run(main())


def test_a_follower_hint_costs_one_extra_ask() -> None:
    calls: list[int] = []

    async def main() -> None:
        async with local_cluster(wrap=lambda i, s: Counting(i, s, calls)) as cluster:
            leader = await cluster.wait_leader()
            async with clerk_for(cluster) as kv:
                # Start at the follower the hint walk would reach last in index order.
                kv.core.leader = (leader + 2) % 3
                await kv.put("k", "v")
                assert calls == [(leader + 2) % 3, leader]
                assert kv.leader == leader
                await kv.get("k")
                assert calls[-1] == leader

    run(main())


class _LosingReplies:
    """Wraps a KVService: the first ``losses`` writes run, but their replies never arrive."""

    def __init__(self, inner: KVService, losses: int) -> None:
        self.inner = inner
        self.losses = losses
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def PutAppend(self, request: pb.PutAppendArgs, controller: RpcController) -> Any:
        reply = await self.inner.PutAppend(request, controller)
        if reply.Err == b"OK" and self.lost < self.losses:
            self.lost += 1
            await asyncio.sleep(60)  # the clerk's RPC deadline cancels this: a lost reply
        return reply


def test_lost_replies_are_retried_with_the_same_id_and_apply_once() -> None:
    wrappers: list[_LosingReplies] = []

    def wrap(i: int, service: KVService) -> object:
        wrappers.append(_LosingReplies(service, losses=2))
        return wrappers[-1]

    async def main() -> None:
        async with local_cluster(wrap=wrap) as cluster:
            async with clerk_for(cluster, rpc_timeout=0.3) as kv:
                await kv.append("k", "x")
                await kv.append("k", "y")
                await kv.append("k", "z")
                assert await kv.get("k") == b"xyz"
            assert sum(w.lost for w in wrappers) == 2

    run(main())


def test_leader_failover_mid_load_keeps_appends_exactly_once_and_in_order() -> None:
    history = HistoryRecorder()

    async def client(kv: AsyncClerk, name: str, count: int) -> None:
        for n in range(count):
            await kv.append(name, f"{n},")
            if n % 5 == 0:
                await kv.get(name)

    async def main() -> None:
        async with local_cluster() as cluster:
            clerks = [clerk_for(cluster, history=history, rng=random.Random(i)) for i in range(4)]
            load = asyncio.gather(*(client(kv, f"c{i}", 40) for i, kv in enumerate(clerks)))
            for _ in range(3):
                await asyncio.sleep(0.15)
                leader = await cluster.wait_leader()
                cluster.transfer_leadership((leader + 1) % 3)
                await cluster.wait_leader(other_than=leader)
            await load
            for i, kv in enumerate(clerks):
                expected = "".join(f"{n}," for n in range(40)).encode()
                assert await kv.get(f"c{i}") == expected
                await kv.close()
            terms = {r.term for r in cluster.replicas}
            assert max(terms) >= 4  # the leadership really moved three times

    run(main(), timeout=30)
    records = history.history()
    assert all(op.status is Status.OK for op in records)
    assert len(records) == 4 * (40 + 8) + 4
    assert_linearizable(records)


def test_a_stalled_cluster_makes_writes_time_out_with_an_unknown_outcome() -> None:
    history = HistoryRecorder()

    async def main() -> None:
        async with (
            local_cluster(request_timeout=0.2) as cluster,
            clerk_for(cluster, history=history, rpc_timeout=0.3) as kv,
        ):
            await kv.put("k", "before")
            cluster.frozen = True
            with pytest.raises(OperationTimeoutError) as info:
                await kv.put("k", "during", timeout=1.0)
            message = str(info.value)
            assert "PutAppend b'k' got no answer within 1s" in message
            assert "the outcome is UNKNOWN" in message
            assert info.value.outcome_unknown
            with pytest.raises(OperationTimeoutError, match="the read had no effect") as r:
                await kv.get("k", timeout=0.5)
            assert not r.value.outcome_unknown
            cluster.frozen = False
            assert await kv.get("k") in (b"before", b"during")

    run(main())
    statuses = [op.status for op in history.history()]
    assert statuses == [Status.OK, Status.UNKNOWN, Status.FAIL, Status.OK]
    assert_linearizable(history.history())


def test_a_partitioned_leader_is_left_behind_and_serves_no_read() -> None:
    history = HistoryRecorder()

    async def main() -> None:
        async with local_cluster() as cluster, clerk_for(cluster, history=history) as kv:
            await kv.put("k", "1")
            old = await cluster.wait_leader()
            cluster.cut = {old}
            await kv.put("k", "2")  # the old leader cannot commit: the clerk finds the new one
            assert kv.leader != old
            assert await kv.get("k") == b"2"
            # Asked directly, the cut-off old leader never answers a linearizable read.
            kv.core.leader = old
            assert await kv.get("k") == b"2"
            assert kv.leader != old
            cluster.cut = set()
            assert await kv.get_stale("k", server=old, timeout=3) in (
                StaleRead(b"1", old),
                StaleRead(b"2", old),
            )

    run(main())
    assert_linearizable(history.history())


def test_no_server_reachable_raises_the_deadline_error_naming_the_last_failure() -> None:
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])

    async def main() -> None:
        servers = [("127.0.0.1", p) for p in ports]
        async with AsyncClerk(servers, policy=FAST, op_timeout=0.4) as kv:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(OperationTimeoutError) as info:
                await kv.append("k", "v")
            assert 0.35 < loop.time() - started < 1.5
            assert "the outcome is UNKNOWN" in str(info.value)
            # The last failure is named: refused, or cut short by the deadline while connecting.
            assert re.search(r"last: node\d \(127\.0\.0\.1:\d+\): .*connect", str(info.value))
            # The abandoned write is finished: the next write acknowledges past it.
            assert kv.core.acked_below() == kv.core.new_request_id()

    run(main())


def test_stale_reads_are_typed_as_such_and_served_by_the_asked_server() -> None:
    async def main() -> None:
        async with local_cluster() as cluster, clerk_for(cluster) as kv:
            await kv.put("k", "v")
            leader = await cluster.wait_leader()
            follower = (leader + 1) % 3
            async with asyncio.timeout(3):
                while cluster.replicas[follower].machine.get(b"k") is None:
                    await asyncio.sleep(0.01)
            read = await kv.get_stale("k", server=follower)
            assert read == StaleRead(b"v", follower)
            assert kv.leader == leader  # a stale read teaches nothing about the leader
            cluster.cut = {follower}
            await kv.put("k", "newer")
            # The cut-off follower still answers, with its old value: that is what stale means.
            assert await kv.get_stale("k", server=follower) == StaleRead(b"v", follower)
            scan = await kv.scan_stale(server=follower)
            assert scan == StaleScan([(b"k", b"v")], follower)
            assert await kv.get("k") == b"newer"

    run(main())


def test_an_unexpected_err_or_a_server_without_the_service_is_a_server_error() -> None:
    async def odd_delete(request: Any, controller: RpcController) -> Any:
        return pb.DeleteReply(Err=b"ErrSomethingNew")

    class OddDelete:
        def __init__(self, inner: KVService) -> None:
            self.inner = inner
            self.Delete = odd_delete

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    async def main() -> None:
        async with (
            local_cluster(wrap=lambda i, s: OddDelete(s)) as cluster,
            clerk_for(cluster) as kv,
        ):
            await kv.put("k", "v")
            with pytest.raises(ServerError, match=r"delete failed: .* ErrSomethingNew"):
                await kv.delete("k")
        provider = RpcProvider()
        provider.register(
            friend_pb2.DESCRIPTOR.services_by_name["FiendServiceRpc"], FriendService()
        )
        address = await provider.start("127.0.0.1", 0)
        try:
            async with AsyncClerk([address], policy=FAST, op_timeout=2) as kv:
                with pytest.raises(ServerError, match="UNKNOWN_SERVICE") as info:
                    await kv.get("k")
                assert info.value.err.startswith("UNKNOWN_SERVICE")
        finally:
            await provider.close()

    run(main())


def test_a_node_that_cannot_persist_for_a_moment_is_retried_not_an_error() -> None:
    """ErrStorageUnavailable (a replica whose disk failed refuses new work until it recovers,
    kvserver/replica.py) means "not now, nothing done": the clerk backs off and asks again, as
    for ErrTimeout, instead of raising ServerError."""
    refusals = {"left": 3}

    class FullDiskPut:
        def __init__(self, inner: KVService) -> None:
            self.inner = inner

        async def PutAppend(self, request: Any, controller: RpcController) -> Any:
            if refusals["left"] > 0:
                refusals["left"] -= 1
                return pb.PutAppendReply(Err=b"ErrStorageUnavailable")
            return await self.inner.PutAppend(request, controller)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    async def main() -> None:
        async with (
            local_cluster(wrap=lambda i, s: FullDiskPut(s)) as cluster,
            clerk_for(cluster) as kv,
        ):
            await kv.put("k", "v")
            assert refusals["left"] == 0
            assert await kv.get("k") == b"v"

    run(main())


def test_history_records_every_operation_kind() -> None:
    history = HistoryRecorder()

    async def main() -> None:
        async with local_cluster() as cluster, clerk_for(cluster, history=history) as kv:
            await kv.put("a", "1")
            await kv.append("a", "2")
            await kv.get("a")
            await kv.put_if_absent("b", "x")
            await kv.update("b", "y")
            await kv.cas("b", "y", "z")
            await kv.cas("c", None, "w")
            await kv.scan("a", "c", 5)
            await kv.delete("a")
            await kv.get_stale("b")  # stale reads are not linearizable: not recorded

    run(main())
    records = history.history()
    assert [(op.op.value, op.key, op.value, op.output) for op in records] == [
        ("put", "a", "1", None),
        ("append", "a", "2", None),
        ("get", "a", None, "12"),
        ("put_if_absent", "b", "x", True),
        ("update", "b", "y", True),
        ("cas", "b", ["y", "z"], True),
        ("put_if_absent", "c", "w", True),
        ("scan", "a", ["c", 5], [["a", "12"], ["b", "z"]]),
        ("delete", "a", None, True),
    ]
    assert_linearizable(records)


def test_blocking_clerk_from_a_test_conf(tmp_path: Path) -> None:
    async def main() -> None:
        async with local_cluster() as cluster:
            conf = tmp_path / "test.conf"
            conf.write_text(
                "".join(
                    f"node{i}ip={host}\nnode{i}port={port}\n"
                    for i, (host, port) in enumerate(cluster.addresses)
                )
            )
            # The blocking clerk waits on its own loop thread; run it off this loop's thread.
            await asyncio.to_thread(blocking_session, conf)

    run(main())


def blocking_session(conf: Path) -> None:
    with Clerk(conf, policy=FAST) as kv:
        kv.put("x", "1")
        kv.append("x", "2")
        assert kv.get("x") == b"12"
        assert kv.put_if_absent("y", "a").applied
        assert kv.update("y", "b") == ConditionalResult(True, b"a")
        assert kv.cas("y", "b", "c").applied
        assert kv.scan() == [(b"x", b"12"), (b"y", b"c")]
        assert kv.delete("y").applied
        assert kv.get_stale("x", server=kv.leader).value == b"12"
        assert kv.scan_stale(server=kv.leader).pairs == [(b"x", b"12")]
        assert len(kv.client_id) == 16

        def appender(name: str) -> None:
            for n in range(10):
                kv.append(name, str(n))

        # Threads share one clerk: their calls run concurrently on its loop.
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(appender, ["t0", "t1", "t2", "t3"]))
        assert [kv.get(f"t{i}") for i in range(4)] == [b"0123456789"] * 4
    with pytest.raises(RuntimeError, match="closed"):
        kv.get("x")
    kv.close()  # idempotent
