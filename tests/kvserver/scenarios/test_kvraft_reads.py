"""Beyond the course: the linearizable scenario again with lease-based reads.

With ``ReadOnlyOption.LEASE_BASED`` a leader answers a Get without a heartbeat round while a
majority answered it within the current check-quorum period. The simulation's clocks tick at one
rate, the lease's assumption, so every history must still be linearizable under partitions,
crashes and an unreliable network (requests delayed up to 26 ms eat into the lease).
"""

from __future__ import annotations

from pathlib import Path

from kvraft_testkit import check_history

from kvserver.testing.clerk import ClerkOptions
from kvserver.testing.cluster import KVCluster, KVClusterOptions
from kvserver.testing.workload import LoadSpec, run_load
from raftcore import ReadOnlyOption


def test_lease_reads_unreliable_recover_concurrent_partition_linearizable(
    kv_seed: int, tmp_path: Path
) -> None:
    """15 clients, 7 servers, random keys, every fault, lease reads."""
    options = KVClusterOptions(
        read_only=ReadOnlyOption.LEASE_BASED, clerk=ClerkOptions(op_deadline_ms=1500)
    )
    cluster = KVCluster(7, kv_seed, options, reliable=False)
    spec = LoadSpec(clients=15, unreliable=True, crash=True, partitions=True, random_keys=True)
    report = cluster.run(run_load(cluster, spec))
    assert report.problems == []
    assert sum(map(sum, report.appends)) > 0
    check_history(cluster, tmp_path)
