"""The scenario checks find the bugs they exist for: each test injects one bug into the simulated
servers and shows the history is rejected, next to the same run without the bug passing.

(a) A stale read: a leader cut off from the majority that serves Gets from its own state without
a ReadIndex round (``stale_reads``) answers with a value the new majority already overwrote. The
bug needs a leader that does not notice it was deposed, so check-quorum is off in both runs.

(b) A doubled append: sessions that expire after 1 ms forget a request by the time its retry
arrives, so on an unreliable network (10 % of replies lost after the write was applied) a retried
Append is applied twice. The clients are legacy ones (AckedBelow 0, like the C++ clerk): the
servers would refuse a current clerk's retry with ErrSessionExpired instead of applying it.
"""

from __future__ import annotations

from kvserver.testing.clerk import ClerkOptions, OperationTimeout
from kvserver.testing.cluster import KVCluster, KVClusterOptions
from kvserver.testing.workload import LoadReport, LoadSpec, run_load
from lincheck import OpKind, Status, Verdict, check_history
from raftcore.testing.cluster import ClusterOptions


def deposed_leader_read(seed: int, *, stale_reads: bool) -> tuple[KVCluster, bytes | None]:
    """Write v1; cut the leader off with a reader; write v2 through the majority; the reader
    then asks the old leader. Returns the cluster and what the reader got (None: no answer)."""
    options = KVClusterOptions(
        raft=ClusterOptions(check_quorum=False),
        stale_reads=stale_reads,
        clerk=ClerkOptions(op_deadline_ms=3000),
    )
    cluster = KVCluster(3, seed, options)
    writer = cluster.make_clerk()
    cluster.run(writer.put(b"k", b"v1"))
    old = cluster.leader()
    assert old is not None
    reader = cluster.make_clerk()
    cluster.partition([old, reader.address], [i for i in cluster.ids if i != old])
    cluster.run(writer.put(b"k", b"v2"))
    try:
        got = cluster.run(reader.get(b"k"))
    except OperationTimeout:
        got = None
    return cluster, got


def test_lincheck_rejects_a_stale_read_from_a_deposed_leader(kv_seed: int) -> None:
    cluster, got = deposed_leader_read(kv_seed, stale_reads=True)
    assert got == b"v1"
    result = check_history(cluster.recorder.history(), timeout=60)
    assert result.verdict is Verdict.ILLEGAL
    assert result.witness is not None
    assert [u.operation.op for u in result.witness.unplaced] == [OpKind.GET]


def test_without_the_bug_the_deposed_leader_serves_no_read(kv_seed: int) -> None:
    cluster, got = deposed_leader_read(kv_seed, stale_reads=False)
    assert got is None
    history = cluster.recorder.history()
    assert [op.status for op in history if op.op is OpKind.GET] == [Status.FAIL]
    assert check_history(history, timeout=60).verdict is Verdict.OK


def unreliable_appends(seed: int, session_max_idle_ms: int | None) -> tuple[KVCluster, LoadReport]:
    """One 3 s round of 5 legacy clients appending to their own keys on an unreliable network."""
    legacy = ClerkOptions(legacy=True)
    options = (
        KVClusterOptions(clerk=legacy)
        if session_max_idle_ms is None
        else KVClusterOptions(session_max_idle_ms=session_max_idle_ms, clerk=legacy)
    )
    cluster = KVCluster(5, seed, options, reliable=False)
    spec = LoadSpec(clients=5, unreliable=True, rounds=1, round_ms=3000)
    return cluster, cluster.run(run_load(cluster, spec))


def test_appends_check_and_lincheck_reject_a_doubled_append(kv_seed: int) -> None:
    cluster, report = unreliable_appends(kv_seed, session_max_idle_ms=1)
    assert any("duplicate" in problem for problem in report.problems), report.problems
    assert check_history(cluster.recorder.history(), timeout=60).verdict is Verdict.ILLEGAL


def test_with_sessions_no_append_is_doubled(kv_seed: int) -> None:
    cluster, report = unreliable_appends(kv_seed, session_max_idle_ms=None)
    assert report.problems == []
    assert sum(report.appends[0]) > 0
    assert check_history(cluster.recorder.history(), timeout=60).verdict is Verdict.OK
