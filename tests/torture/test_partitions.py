"""Real network faults on real node processes, each node in its own network namespace.

Each scenario runs with ReadIndex reads and with lease reads, under three recorded load clients
in the root namespace (which keep reaching every node: only node-to-node links are cut, except
where client packets are lost on purpose). :meth:`harness.Torture.finish` then heals everything
and checks that the cluster recovers, that every acknowledged write is there, and that the whole
history, including reads asked of single nodes behind a partition, is linearizable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from harness import Torture

MakeTorture = Callable[..., Torture]

pytestmark = [pytest.mark.torture, pytest.mark.timeout(180)]
READS = [pytest.param(False, id="readindex"), pytest.param(True, id="lease")]
HOLD_S = 3.0


def run(coro: Coroutine[Any, Any, None], timeout: float = 150.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.parametrize("lease_reads", READS)
def test_isolated_leader_is_replaced_and_serves_no_stale_read(
    make_torture: MakeTorture, lease_reads: bool
) -> None:
    t = make_torture(3, lease_reads=lease_reads)

    async def main() -> None:
        await t.start_load()
        old, term = await t.leader()
        others = set(range(3)) - {old}
        t.partition([{old}, others])
        cut_ns = time.monotonic_ns()
        # The clients still reach the old leader: it must neither commit nor serve stale reads.
        reads = asyncio.create_task(t.read_from(old, HOLD_S + 1.0))
        new, new_term = await t.leader(among=others, above_term=term)
        t.note(f"node{new} leads term {new_term} without node{old}")
        await reads
        windows = [("the isolation", cut_ns, time.monotonic_ns())]
        await t.finish(windows)

    run(main())


@pytest.mark.parametrize("lease_reads", READS)
def test_minority_and_majority_split_with_the_leader_on_either_side(
    make_torture: MakeTorture, lease_reads: bool
) -> None:
    t = make_torture(5, lease_reads=lease_reads)

    async def main() -> None:
        await t.start_load()
        old, term = await t.leader()
        minority = {old, (old + 1) % 5}
        majority = set(range(5)) - minority
        t.partition([minority, majority])
        cut_ns = time.monotonic_ns()
        reads = asyncio.create_task(t.read_from(old, HOLD_S))
        new, term = await t.leader(among=majority, above_term=term)
        await reads
        first = ("the split with the leader in the minority", cut_ns, time.monotonic_ns())
        # Now the leader on the majority side: two of its followers cut off.
        cut_off = set(sorted(majority - {new})[:2])
        t.partition([cut_off, set(range(5)) - cut_off])
        cut_ns = time.monotonic_ns()
        await asyncio.gather(*(t.read_from(i, HOLD_S) for i in cut_off))
        second = ("the split with the leader in the majority", cut_ns, time.monotonic_ns())
        await t.finish([first, second])

    run(main())


@pytest.mark.parametrize("lease_reads", READS)
def test_bridge_node_then_killed(make_torture: MakeTorture, lease_reads: bool) -> None:
    """A sees B and C, B and C not each other (the leader is B); then A dies mid-bridge."""
    t = make_torture(3, lease_reads=lease_reads)

    async def main() -> None:
        await t.start_load()
        b, _ = await t.leader()
        a, c = (b + 1) % 3, (b + 2) % 3
        t.cut([(b, c)])
        cut_ns = time.monotonic_ns()
        await asyncio.gather(t.read_from(b, HOLD_S), t.read_from(c, HOLD_S))
        window = ("the bridge", cut_ns, time.monotonic_ns())
        t.kill(a)  # no majority can talk now
        await asyncio.gather(t.read_from(b, 1.5), t.read_from(c, 1.5))
        t.restart(a)
        await asyncio.sleep(1.0)
        await t.finish([window])

    run(main())


@pytest.mark.parametrize("lease_reads", READS)
def test_packet_loss_with_a_paused_follower(make_torture: MakeTorture, lease_reads: bool) -> None:
    t = make_torture(3, lease_reads=lease_reads)

    async def main() -> None:
        await t.start_load()
        leader, _ = await t.leader()
        t.loss(20, 5)
        lossy_ns = time.monotonic_ns()
        await asyncio.sleep(HOLD_S)
        follower = (leader + 1) % 3
        t.pause(follower)  # the leader is left with one lossy link for its quorum
        await asyncio.sleep(1.5)
        t.resume(follower)
        await asyncio.sleep(1.0)
        await t.finish([("the loss", lossy_ns, time.monotonic_ns())])

    run(main())


@pytest.mark.parametrize("lease_reads", READS)
def test_delayed_links_with_a_frozen_leader_and_a_killed_follower(
    make_torture: MakeTorture, lease_reads: bool
) -> None:
    t = make_torture(3, lease_reads=lease_reads, delay_proxy=True)

    async def main() -> None:
        await t.start_load()
        t.delay(20, 20)
        slow_ns = time.monotonic_ns()
        await asyncio.sleep(2.0)
        window = ("delays of 20-40 ms", slow_ns, time.monotonic_ns())
        leader, term = await t.leader()
        t.delay(60, 60)
        t.pause(leader)
        reads = asyncio.create_task(t.read_from(leader, 2.5))
        await t.leader(among=set(range(3)) - {leader}, above_term=term)
        await asyncio.sleep(1.0)
        t.resume(leader)  # it wakes behind delayed links, still thinking it leads
        await reads
        new, _ = await t.leader()
        t.kill((new + 1) % 3)
        await asyncio.sleep(1.5)
        await t.finish([window])

    run(main())
