"""6.5840 kvraft 4A (the KV service without snapshots) on the simulated cluster, in virtual time.

Each generic scenario runs the course's three rounds of client load (5 s each, the partitioner
re-splitting every 1.0-1.2 s after the first second, all servers crashed and restarted after each
round) and then checks every client's appends (exactly once, in order) and the whole history with
lincheck. One deviation, for the runtime of a Python simulation: on a reliable network the course's
clients send operations back to back, about 3 600 a virtual second on five servers, which costs
~10 s of real time per virtual second; those scenarios keep the course's timeline but let each
client pause a mean ``think_ms`` between operations (stated in each docstring; the
``--kv-course-pace`` option removes the pauses). Unreliable scenarios are slow
enough in virtual time already and keep the course's back-to-back pace.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kvraft_testkit import check_history, check_value, generic_test, speed_test

from kvserver.testing.clerk import ClerkOptions
from kvserver.testing.cluster import KVCluster
from kvserver.testing.workload import (
    ELECTION_TIMEOUT_MS,
    LoadSpec,
    check_append_order,
    check_appends,
)
from lincheck import bytes_to_str
from raftcore.testing.process import Proc
from raftcore.testing.scheduler import MS, SECOND


def test_basic(kv_seed: int, tmp_path: Path, paced: Callable[[int], int]) -> None:
    """TestBasic4A: 1 client, 5 servers, 3 rounds of 5 s; client pause 5 ms mean."""
    generic_test(kv_seed, 5, LoadSpec(clients=1, think_ms=paced(5)), tmp_path)


def test_speed(kv_seed: int) -> None:
    """TestSpeed4A: 1000 appends at <= 33.3 ms each in virtual time (figure printed)."""
    speed_test(kv_seed, None)


def test_concurrent(kv_seed: int, tmp_path: Path, paced: Callable[[int], int]) -> None:
    """TestConcurrent4A: 5 clients, 5 servers; client pause 30 ms mean."""
    generic_test(kv_seed, 5, LoadSpec(clients=5, think_ms=paced(30)), tmp_path)


def test_unreliable(kv_seed: int, tmp_path: Path) -> None:
    """TestUnreliable4A: 5 clients, 5 servers, unreliable network, back to back."""
    generic_test(kv_seed, 5, LoadSpec(clients=5, unreliable=True), tmp_path)


def test_unreliable_one_key(kv_seed: int) -> None:
    """TestUnreliableOneKey4A: 5 clients append 10 values each to one key on an unreliable
    3-server cluster: every value appears once, each client's in its order. The history is
    checked with :func:`check_append_order` (exact for appends read once at the end; lincheck's
    general search is exponential on it, and the course does not check it with porcupine)."""
    clients, upto = 5, 10
    cluster = KVCluster(3, kv_seed, reliable=False)
    ck = cluster.make_clerk()
    cluster.run(ck.put(b"k", b""))

    def appender(me: int) -> Proc[None]:
        clerk = cluster.make_clerk()
        for n in range(upto):
            yield from clerk.append(b"k", b"x %d %d y" % (me, n))

    def everyone() -> Proc[bytes | None]:
        procs = [cluster.spawn(appender(me)) for me in range(clients)]
        for proc in procs:
            yield proc.finished
        return (yield from ck.get(b"k"))

    value = cluster.run(everyone()) or b""
    problems = [p for me in range(clients) for p in check_appends(me, value, upto)]
    problems += check_append_order(cluster.recorder.history(), "k", bytes_to_str(value))
    assert not problems, "\n".join(problems)


def test_one_partition(kv_seed: int, tmp_path: Path) -> None:
    """TestOnePartition4A: with the leader in a 2-server minority, the 3-server majority makes
    progress; a Put and a Get sent to the minority do not finish within 1 s, and both finish
    within 3 s of healing (after the course's election-timeout wait)."""
    servers = 5
    cluster = KVCluster(servers, kv_seed)
    ck = cluster.make_clerk()
    cluster.run(ck.put(b"1", b"13"))
    leader = cluster.leader()
    assert leader is not None
    others = [i for i in cluster.ids if i != leader]
    p1, p2 = others[: servers // 2 + 1], [*others[servers // 2 + 1 :], leader]
    ckp1, ckp2a, ckp2b = cluster.make_clerk(), cluster.make_clerk(), cluster.make_clerk()
    cluster.partition([*p1, ckp1.address], [*p2, ckp2a.address, ckp2b.address])

    # progress in majority
    cluster.run(ckp1.put(b"1", b"14"))
    check_value(cluster, ckp1.get(b"1"), b"14")

    # no progress in minority
    done0 = cluster.spawn(ckp2a.put(b"1", b"15"))
    done1 = cluster.spawn(ckp2b.get(b"1"))
    cluster.sleep(SECOND)
    assert not done0.done, "Put in minority completed"
    assert not done1.done, "Get in minority completed"
    check_value(cluster, ckp1.get(b"1"), b"14")
    cluster.run(ckp1.put(b"1", b"16"))
    check_value(cluster, ckp1.get(b"1"), b"16")

    # completion after heal
    cluster.connect_all()
    cluster.sleep(ELECTION_TIMEOUT_MS * MS)
    deadline = cluster.now + 3 * SECOND
    assert cluster.scheduler.run_until_true(lambda: done0.done, deadline), "Put did not complete"
    assert cluster.scheduler.run_until_true(lambda: done1.done, deadline), "Get did not complete"
    check_value(cluster, ck.get(b"1"), b"15")
    check_history(cluster, tmp_path)


def test_many_partitions_one_client(
    kv_seed: int, tmp_path: Path, paced: Callable[[int], int]
) -> None:
    """TestManyPartitionsOneClient4A: partitions, 1 client, 5 servers; pause 10 ms mean."""
    generic_test(kv_seed, 5, LoadSpec(clients=1, partitions=True, think_ms=paced(10)), tmp_path)


def test_many_partitions_many_clients(
    kv_seed: int, tmp_path: Path, paced: Callable[[int], int]
) -> None:
    """TestManyPartitionsManyClients4A: partitions, 5 clients, 5 servers; pause 50 ms mean."""
    generic_test(kv_seed, 5, LoadSpec(clients=5, partitions=True, think_ms=paced(50)), tmp_path)


def test_persist_one_client(kv_seed: int, tmp_path: Path, paced: Callable[[int], int]) -> None:
    """TestPersistOneClient4A: restarts, 1 client, 5 servers; pause 5 ms mean."""
    generic_test(kv_seed, 5, LoadSpec(clients=1, crash=True, think_ms=paced(5)), tmp_path)


def test_persist_concurrent(kv_seed: int, tmp_path: Path, paced: Callable[[int], int]) -> None:
    """TestPersistConcurrent4A: restarts, 5 clients, 5 servers; pause 30 ms mean."""
    generic_test(kv_seed, 5, LoadSpec(clients=5, crash=True, think_ms=paced(30)), tmp_path)


def test_persist_concurrent_unreliable(kv_seed: int, tmp_path: Path) -> None:
    """TestPersistConcurrentUnreliable4A: restarts, 5 clients, unreliable, back to back."""
    spec = LoadSpec(clients=5, unreliable=True, crash=True)
    generic_test(kv_seed, 5, spec, tmp_path)


def test_persist_partition(kv_seed: int, tmp_path: Path, paced: Callable[[int], int]) -> None:
    """TestPersistPartition4A: restarts and partitions, 5 clients; pause 50 ms mean."""
    spec = LoadSpec(clients=5, crash=True, partitions=True, think_ms=paced(50))
    generic_test(kv_seed, 5, spec, tmp_path)


def test_persist_partition_unreliable(kv_seed: int, tmp_path: Path) -> None:
    """TestPersistPartitionUnreliable4A: restarts, partitions, unreliable, 5 clients."""
    spec = LoadSpec(clients=5, unreliable=True, crash=True, partitions=True)
    generic_test(kv_seed, 5, spec, tmp_path)


def test_persist_partition_unreliable_linearizable(kv_seed: int, tmp_path: Path) -> None:
    """TestPersistPartitionUnreliableLinearizable4A: 15 clients, 7 servers, every fault, random
    keys (10 % Puts). A write that gets no answer within 1.5 s is recorded as unknown and the
    client goes on, so the history exercises lincheck's unknown operations."""
    spec = LoadSpec(clients=15, unreliable=True, crash=True, partitions=True, random_keys=True)
    generic_test(kv_seed, 7, spec, tmp_path, clerk=ClerkOptions(op_deadline_ms=1500))
