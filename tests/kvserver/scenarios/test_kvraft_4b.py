"""6.5840 kvraft 4B (snapshots, maxraftstate 1000) on the simulated cluster, in virtual time.

Same rounds, checks and client pacing rule as the 4A module (see its docstring); with snapshots
every round also checks that no server's Raft state exceeds 8 x maxraftstate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kvraft_testkit import check_history, check_value, generic_test, speed_test

from kvserver.testing.clerk import ClerkOptions
from kvserver.testing.cluster import KVCluster, KVClusterOptions
from kvserver.testing.workload import LoadSpec
from raftcore.testing.scheduler import SECOND

MAX_RAFT_STATE = 1000
MAX_SNAPSHOT_STATE = 500


def test_snapshot_rpc(kv_seed: int, tmp_path: Path) -> None:
    """TestSnapshotRPC4B: 51 puts into the {1,2} majority keep the log <= 8 x maxraftstate;
    then {1,3} must work, so server 3 catches up by InstallSnapshot."""
    cluster = KVCluster(3, kv_seed, KVClusterOptions(max_raft_state=MAX_RAFT_STATE))
    ck = cluster.make_clerk()
    cluster.run(ck.put(b"a", b"A"))
    check_value(cluster, ck.get(b"a"), b"A")

    ck1 = cluster.make_clerk()
    cluster.partition([1, 2, ck1.address], [3])
    for i in range(50):
        cluster.run(ck1.put(b"%d" % i, b"%d" % i))
    cluster.sleep(SECOND)
    cluster.run(ck1.put(b"b", b"B"))
    size = cluster.log_size()
    assert size <= 8 * MAX_RAFT_STATE, f"logs were not trimmed ({size} > 8*{MAX_RAFT_STATE})"

    ck2 = cluster.make_clerk()
    cluster.partition([1, 3, ck2.address], [2])
    cluster.run(ck2.put(b"c", b"C"))
    cluster.run(ck2.put(b"d", b"D"))
    for key, wanted in ((b"a", b"A"), (b"b", b"B"), (b"1", b"1"), (b"49", b"49")):
        check_value(cluster, ck2.get(key), wanted)
    assert cluster.node(3).snapshots_installed > 0, "server 3 caught up without InstallSnapshot"

    cluster.partition([1, 2, 3])
    cluster.run(ck.put(b"e", b"E"))
    for key, wanted in ((b"c", b"C"), (b"e", b"E"), (b"1", b"1")):
        check_value(cluster, ck.get(key), wanted)
    check_history(cluster, tmp_path)


def test_snapshot_size(kv_seed: int) -> None:
    """TestSnapshotSize4B: 800 operations on one key leave the log <= 8 x maxraftstate and
    every snapshot <= 500 bytes (it grows with the data, not with the history)."""
    cluster = KVCluster(3, kv_seed, KVClusterOptions(max_raft_state=MAX_RAFT_STATE))
    ck = cluster.make_clerk()
    for _ in range(200):
        cluster.run(ck.put(b"x", b"0"))
        check_value(cluster, ck.get(b"x"), b"0")
        cluster.run(ck.put(b"x", b"1"))
        check_value(cluster, ck.get(b"x"), b"1")
    size = cluster.log_size()
    assert size <= 8 * MAX_RAFT_STATE, f"logs were not trimmed ({size} > 8*{MAX_RAFT_STATE})"
    snapshot = cluster.snapshot_size()
    assert 0 < snapshot <= MAX_SNAPSHOT_STATE, f"snapshot too large ({snapshot} bytes)"


def test_speed(kv_seed: int) -> None:
    """TestSpeed4B: the speed test with maxraftstate 1000."""
    speed_test(kv_seed, MAX_RAFT_STATE)


def test_snapshot_recover(kv_seed: int, tmp_path: Path, paced: Callable[[int], int]) -> None:
    """TestSnapshotRecover4B: snapshots and restarts, 1 client, 5 servers; pause 5 ms mean."""
    spec = LoadSpec(clients=1, crash=True, think_ms=paced(5))
    generic_test(kv_seed, 5, spec, tmp_path, max_raft_state=MAX_RAFT_STATE)


def test_snapshot_recover_many_clients(
    kv_seed: int, tmp_path: Path, paced: Callable[[int], int]
) -> None:
    """TestSnapshotRecoverManyClients4B: snapshots and restarts, 20 clients; pause 120 ms mean."""
    spec = LoadSpec(clients=20, crash=True, think_ms=paced(120))
    generic_test(kv_seed, 5, spec, tmp_path, max_raft_state=MAX_RAFT_STATE)


def test_snapshot_unreliable(kv_seed: int, tmp_path: Path) -> None:
    """TestSnapshotUnreliable4B: snapshots, 5 clients, unreliable network, back to back."""
    spec = LoadSpec(clients=5, unreliable=True)
    generic_test(kv_seed, 5, spec, tmp_path, max_raft_state=MAX_RAFT_STATE)


def test_snapshot_unreliable_recover(kv_seed: int, tmp_path: Path) -> None:
    """TestSnapshotUnreliableRecover4B: snapshots, unreliable network, restarts, 5 clients."""
    spec = LoadSpec(clients=5, unreliable=True, crash=True)
    generic_test(kv_seed, 5, spec, tmp_path, max_raft_state=MAX_RAFT_STATE)


def test_snapshot_unreliable_recover_concurrent_partition(kv_seed: int, tmp_path: Path) -> None:
    """TestSnapshotUnreliableRecoverConcurrentPartition4B: snapshots and every fault, 5 clients."""
    spec = LoadSpec(clients=5, unreliable=True, crash=True, partitions=True)
    generic_test(kv_seed, 5, spec, tmp_path, max_raft_state=MAX_RAFT_STATE)


def test_snapshot_unreliable_recover_concurrent_partition_linearizable(
    kv_seed: int, tmp_path: Path
) -> None:
    """TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4B: snapshots, every fault,
    15 clients, 7 servers, random keys; writes unanswered within 1.5 s are recorded unknown."""
    spec = LoadSpec(clients=15, unreliable=True, crash=True, partitions=True, random_keys=True)
    generic_test(
        kv_seed,
        7,
        spec,
        tmp_path,
        max_raft_state=MAX_RAFT_STATE,
        clerk=ClerkOptions(op_deadline_ms=1500),
    )
