"""Exactly-once while the leaders' wall clocks jump (issue 14, item 7).

Five servers on an unreliable network (replies lost after the write applied, so clients retry
with the same RequestId), a partitioner forcing leader changes, and every 0.5-1 s the leader's
wall clock jumps: ahead by more than any clock before (1 h, 2 h, ...), then back to true time or
an hour behind. Five clients append to their own keys. Every append must appear exactly once and
in order, and lincheck must accept the whole history; with current clerks and with legacy ones
(AckedBelow 0, the C++ clerk's), which the clock bound alone protects.

The same run with the session clock's per-command bound lifted (the old advance to the stamp)
must fail: legacy clients get appends doubled (and lincheck rejects the history), current
clients get retries refused ErrSessionExpired.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kvraft_testkit import check_history

from kvserver.sessions import DEFAULT_MAX_CLOCK_STEP_MS
from kvserver.testing.clerk import ClerkOptions
from kvserver.testing.cluster import WALL_CLOCK_EPOCH_MS, KVCluster, KVClusterOptions
from kvserver.testing.workload import HOUR_MS, LoadReport, LoadSpec, run_load
from lincheck import Verdict
from lincheck import check_history as lincheck_history
from raftcore.testing.scheduler import MS

UNBOUNDED_STEP_MS = 10**15
"""A bound no stamp reaches: the session clock follows the stamps, as before the fix."""

SPEC = LoadSpec(clients=5, unreliable=True, partitions=True, clock_jumps=True)


def jumping_clocks(seed: int, *, legacy: bool, clock_step_ms: int) -> tuple[KVCluster, LoadReport]:
    options = KVClusterOptions(
        session_clock_step_ms=clock_step_ms, clerk=ClerkOptions(legacy=legacy)
    )
    cluster = KVCluster(5, seed, options, reliable=False)
    return cluster, cluster.run(run_load(cluster, SPEC))


@pytest.mark.parametrize("legacy", [False, True], ids=["clerk", "legacy-clerk"])
def test_appends_stay_exactly_once_while_leader_clocks_jump(
    kv_seed: int, legacy: bool, tmp_path: Path
) -> None:
    cluster, report = jumping_clocks(
        kv_seed, legacy=legacy, clock_step_ms=DEFAULT_MAX_CLOCK_STEP_MS
    )
    assert not report.problems, "\n".join(report.problems[:20])
    assert sum(report.appends[0]) > 0, "the clients made no progress"
    offsets = [offset for _, _, offset in cluster.wall_clock_jumps]
    assert max(offsets) >= 3 * HOUR_MS and min(offsets) <= 0, "the clocks did not jump both ways"
    assert len({node for _, node, _ in cluster.wall_clock_jumps}) >= 2, "no leader change"
    check_history(cluster, tmp_path)
    # The session clock moved by the run's virtual time plus at most a bound per jump or leader
    # change, never by the hours the clocks jumped.
    for i in cluster.ids:
        sessions = cluster.node(i).machine.sessions
        assert sessions.last_stamp_ms >= WALL_CLOCK_EPOCH_MS - HOUR_MS
        assert sessions.clock_ms < cluster.now // MS + 100 * DEFAULT_MAX_CLOCK_STEP_MS


def test_the_old_unbounded_clock_doubles_legacy_appends(kv_seed: int) -> None:
    cluster, report = jumping_clocks(kv_seed, legacy=True, clock_step_ms=UNBOUNDED_STEP_MS)
    assert any("duplicate" in problem for problem in report.problems), report.problems
    verdict = lincheck_history(cluster.recorder.history(), timeout=60).verdict
    assert verdict is Verdict.ILLEGAL


def test_the_old_unbounded_clock_makes_current_clerks_see_expired_sessions(kv_seed: int) -> None:
    _, report = jumping_clocks(kv_seed, legacy=False, clock_step_ms=UNBOUNDED_STEP_MS)
    assert any("ErrSessionExpired" in problem for problem in report.problems), report.problems
