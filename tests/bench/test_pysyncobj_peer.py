"""Smoke test of the PySyncObj side of bench.compare: a real 3-node cluster, ~1 s of load."""

from __future__ import annotations

import pytest

from bench.pysyncobj_peer import PeerCluster, PeerError


@pytest.mark.timeout(40)
@pytest.mark.parametrize("batch", [False, True], ids=["batch-off", "batch-on"])
def test_closed_loop_commits_and_every_peer_exits(batch: bool) -> None:
    with PeerCluster(batch=batch, keys=10) as cluster:
        result = cluster.load(inflight=4, warmup_s=0.2, duration_s=0.8)
        procs = cluster.processes
    assert result["committed"] > 0
    assert result["drained"]
    assert len(result["latencies_ms"]) == result["committed"]
    assert all(latency > 0 for latency in result["latencies_ms"])
    assert [proc.poll() for proc in procs] == [0, 0, 0]


@pytest.mark.timeout(40)
def test_a_refused_request_is_a_peer_error_and_still_stops_every_peer() -> None:
    with pytest.raises(PeerError, match="inflight"), PeerCluster(batch=True) as cluster:
        procs = cluster.processes
        cluster.load(inflight=0, warmup_s=0.0, duration_s=0.1)
    assert all(proc.poll() is not None for proc in procs)
