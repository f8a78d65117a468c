"""Smoke test of the PySyncObj side of bench.compare: a real 3-node cluster, ~1 s of load."""

from __future__ import annotations

import pytest

from bench.pysyncobj_peer import PeerCluster, PeerError


@pytest.mark.timeout(40)
def test_closed_loop_commits_survives_a_bad_request_and_every_peer_exits() -> None:
    with PeerCluster(batch=False, keys=10) as cluster:
        result = cluster.load(inflight=4, warmup_s=0.2, duration_s=0.8)
        with pytest.raises(PeerError, match="inflight must be >= 1"):
            cluster.load(inflight=0, warmup_s=0.0, duration_s=0.1)
        again = cluster.load(inflight=1, warmup_s=0.0, duration_s=0.2)
        procs = cluster.processes
    assert result["committed"] > 0
    assert result["drained"]
    assert len(result["latencies_ms"]) == result["committed"]
    assert all(latency > 0 for latency in result["latencies_ms"])
    assert again["committed"] > 0
    assert [proc.poll() for proc in procs] == [0, 0, 0]
