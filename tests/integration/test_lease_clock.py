"""Lease reads in real node processes whose leader's monotonic clock runs fast or slow.

Node 0 runs with the hidden ``--test-clock-rate`` (its ticks and the clock its lease is measured
on run 8 % slow or fast, inside the default 10 % drift margin); the test moves leadership to it,
puts it under load, freezes it with SIGSTOP for longer than an election timeout while the others
elect a new leader and take writes, then asks it directly right after SIGCONT. Every acknowledged
write must be in the store and the merged history must be linearizable: a lease that outlived
the followers' vote refusal would answer from the frozen leader's stale state.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from workload import SHARED_KEYS, ClientLoad, raw_get

from cluster.processes import ProcCluster
from lincheck import HistoryRecorder, OpKind, Status

MakeCluster = Callable[..., ProcCluster]
MakeLoad = Callable[..., ClientLoad]

pytestmark = pytest.mark.timeout(90)
SKEWED = 0
MAX_MOVES = 16  # each move makes a random one of the two others leader: 2^-16 to miss node 0


def run(coro: Coroutine[Any, Any, None], timeout: float = 85.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


async def make_skewed_node_lead(cluster: ProcCluster) -> int:
    """Freeze whichever other node leads until someone else does, until node 0 leads; its term."""
    leader, term = await cluster.wait_leader(timeout=20)
    for _ in range(MAX_MOVES):
        if leader == SKEWED:
            return term
        frozen = leader
        cluster.signal(frozen, signal.SIGSTOP)
        try:
            others = set(range(cluster.n)) - {frozen}
            leader, term = await cluster.wait_leader(among=others, above_term=term, timeout=10)
        finally:
            cluster.signal(frozen, signal.SIGCONT)
    raise AssertionError(f"node {SKEWED} never became leader in {MAX_MOVES} moves")


@pytest.mark.parametrize("rate", [0.92, 1.08])
def test_a_leader_with_a_skewed_clock_frozen_by_sigstop_serves_no_stale_lease_read(
    make_cluster: MakeCluster, make_load: MakeLoad, rate: float
) -> None:
    cluster = make_cluster(
        3, extra_args=["--lease-reads"], node_args={SKEWED: ["--test-clock-rate", str(rate)]}
    )
    raw = HistoryRecorder()

    async def main() -> None:
        term = await make_skewed_node_lead(cluster)
        load = make_load(cluster)
        await load.wait_running()
        await asyncio.sleep(0.5)
        cluster.signal(SKEWED, signal.SIGSTOP)
        frozen_ns = time.monotonic_ns()
        try:
            others = set(range(cluster.n)) - {SKEWED}
            await cluster.wait_leader(among=others, above_term=term, timeout=5)
            await asyncio.sleep(0.5)
        finally:
            woken_ns = time.monotonic_ns()
            cluster.signal(SKEWED, signal.SIGCONT)
        await asyncio.gather(*(raw_get(cluster.servers[SKEWED], key, raw) for key in SHARED_KEYS))
        await asyncio.sleep(1.0)
        load.stop()
        assert any(
            op.status is Status.OK and op.op is not OpKind.GET and frozen_ns < op.call < woken_ns
            for op in load.history
        )
        await load.verify()
        load.check_linearizable(raw.history())

    run(main())
