"""The clerk follows the membership: an in-process cluster whose nodeAdmin.MemberList says which
nodes are members (tests/clerk/clerk_testkit.py), over real RPC."""

from __future__ import annotations

import random
import re
import socket
from typing import Any

import pytest

from clerk import AsyncClerk, Connections, OperationTimeoutError, RetryPolicy
from rpc import RpcConnectionError
from tests.clerk.clerk_testkit import Counting, LocalCluster, local_cluster, run

FAST = RetryPolicy(initial_backoff_ms=5, max_backoff_ms=50)
ROUTINE_NEVER = 3600.0  # no routine refresh within a test: every learning has a cause


def options(**overrides: Any) -> dict[str, Any]:
    return {"policy": FAST, "rng": random.Random(3), "op_timeout": 8.0, **overrides}


async def lead(cluster: LocalCluster, i: int) -> None:
    """Make server ``i`` the leader."""
    leader = await cluster.wait_leader()
    if leader != i:
        cluster.transfer_leadership(i)
        assert await cluster.wait_leader(other_than=leader) == i


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_leader_the_clerk_was_not_given_is_learned_from_its_hint_once_for_all_clerks() -> None:
    async def main() -> None:
        async with local_cluster(admin=True) as cluster:
            await lead(cluster, 2)
            # Started knowing node0 and node1 only, as from a test.conf written before node2.
            shared = Connections(cluster.addresses[:2], refresh_every=ROUTINE_NEVER)
            async with shared:
                async with AsyncClerk(shared, **options()) as kv:
                    await kv.put("k", "v")  # node0 hints node2 (Raft id 3): learned, then asked
                    assert kv.leader == 2
                    assert kv.servers == dict(enumerate(cluster.addresses))
                    learned = sum(cluster.member_list_calls)
                    assert learned == 2  # node0 and node1 asked at once, one time
                    async with AsyncClerk(shared, **options()) as other:
                        assert other.servers == kv.servers  # the table is shared
                        for i in range(10):
                            await other.put("k", str(i))
                            assert await kv.get("k") == str(i).encode()
                    # Following the leader costs no member list per operation.
                    assert sum(cluster.member_list_calls) == learned
                channel = shared.channel(cluster.addresses[2])
                assert shared.channel(cluster.addresses[2]) is channel  # opened once
            assert not channel.connected  # closed with the Connections
            with pytest.raises(RpcConnectionError, match="closed"):
                shared.channel(("127.0.0.1", free_port()))

    run(main())


def test_members_no_longer_listed_are_no_longer_asked_but_kept_for_discovery() -> None:
    calls: list[int] = []

    async def main() -> None:
        async with local_cluster(admin=True, wrap=lambda i, s: Counting(i, s, calls)) as cluster:
            await lead(cluster, 1)
            cluster.members = {1, 2}  # node0 removed (its Raft still runs: it would answer)
            shared = Connections(cluster.addresses, refresh_every=ROUTINE_NEVER)
            async with shared, AsyncClerk(shared, **options()) as kv:
                await shared.learn(5.0)
                assert kv.servers == {1: cluster.addresses[1], 2: cluster.addresses[2]}
                assert shared.table.discovery()[-1] == cluster.addresses[0]  # the last resort
                for i in range(10):
                    await kv.append("k", str(i))
                assert await kv.get("k") == b"0123456789"
                assert 0 not in calls and calls

    run(main())


def test_a_failed_round_learns_the_members_even_from_a_wrong_list() -> None:
    async def main() -> None:
        async with local_cluster(admin=True) as cluster:
            await lead(cluster, 0)
            # node2 listed first, taken for node0; then a server that is gone. node2's hint
            # (Raft id 1) names the slot it sits in, the other refuses: a round fails.
            dead = ("127.0.0.1", free_port())
            shared = Connections([cluster.addresses[2], dead], refresh_every=ROUTINE_NEVER)
            async with shared, AsyncClerk(shared, **options()) as kv:
                await kv.put("k", "v")
                assert kv.servers == dict(enumerate(cluster.addresses))
                assert kv.leader == 0
                assert await kv.get("k") == b"v"
                assert dead in shared.table.discovery()

    run(main())


def test_a_member_that_never_answers_the_list_delays_learning_not_the_operation() -> None:
    async def main() -> None:
        async with local_cluster(admin=True) as cluster:
            await lead(cluster, 2)
            cluster.silent_admin = {0}
            async with AsyncClerk(cluster.addresses[:2], **options(rpc_timeout=0.3)) as kv:
                await kv.put("k", "v")
                assert await kv.get("k") == b"v"
                assert kv.leader == 2

    run(main())


def test_when_no_member_list_comes_the_operation_ends_at_its_deadline_still_asking() -> None:
    async def main() -> None:
        async with local_cluster(admin=True) as cluster:
            await lead(cluster, 2)
            cluster.silent_admin = {0, 1, 2}
            # A learning that waits 10 s for each member list, the clerk's asks 0.2 s.
            shared = Connections(cluster.addresses[:2], rpc_timeout=10.0)
            clerk = AsyncClerk(shared, **options(rpc_timeout=0.2, op_timeout=1.5))
            async with shared, clerk as kv:
                with pytest.raises(OperationTimeoutError, match="not the leader") as info:
                    await kv.get("k")
            # The learning held the operation up for one rpc timeout, not to its deadline: it
            # went on asking (one held up for good would have asked once or twice).
            asks = re.search(r"\((\d+) asks;", str(info.value))
            assert asks is not None and int(asks.group(1)) > 3

    run(main())
