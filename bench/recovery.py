"""Recovery and memory of a 3-node cluster holding N keys: restart-to-serve, RSS, snapshot cost.

Run ``python -m bench.recovery [--keys 1000000] [--key-size 16] [--value-size 100] [--json]``.

How the keys get into the nodes (honestly): writing a million keys through the cluster at a few
thousand writes/s takes minutes, so the benchmark builds every node's data directory directly,
with the code a node itself uses. One :class:`~kvserver.state_machine.KVStateMachine` applies N
``Put`` commands (encoded ``Command`` entries, one client session, keys ascending), and its
snapshot is written into each node's fresh :class:`~kvserver.storage.DiskStorage` through
``snapshot_writer``, exactly as ``Replica._take_snapshot`` does: the same bytes a node writes,
at log index N, term 1. The cluster then starts on those directories and more writes go through
Raft before anything is timed.

What is measured, in this order:

1. ``snapshot_dump_s``: a snapshot of the N-key state machine through the DiskStorage writer
   (encode, write, fsync, rename), in this process; the median of the three nodes' directories.
   A node does this on its event-loop thread, so it is a stall for every client of that node.
   ``snapshot_encode_s`` is the encoding alone. ``snapshot_bytes`` is the size of the snapshot
   data.
2. ``restore_s``: ``restore_machine`` (the node's own start-up path) on a fresh state machine,
   in this process, and ``memory_per_key_bytes``: the growth of this process's RSS it causes,
   per key (the keys' and values' own bytes included).
3. The cluster starts on the directories; ``--writes`` puts go through Raft; every node stops
   (SIGTERM). Then ``cluster_restart_s``: from starting the three processes again until a
   linearizable ``get`` of a known key succeeds through :class:`clerk.AsyncClerk`;
   ``cluster_listen_s`` is when each node first accepted a TCP connection.
4. ``nodes``: each node's ``VmRSS`` and ``VmHWM`` (peak) from ``/proc/PID/status``, once it
   serves with the N keys loaded.
5. ``follower_restart_s``: one follower is stopped and started again; the time from its start
   until its ``nodeAdmin.Status`` reports ``Applied`` >= the snapshot index.

Every node runs with ``--exit-with-stdin`` in its own process group and is stopped (SIGTERM, then
SIGKILL) on every exit path; the temporary directory is removed at the end. Times are wall-clock
(``time.perf_counter``): on a shared machine they include other processes' load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clerk import AsyncClerk, RetryPolicy
from cluster.processes import ProcCluster
from cluster.status import StatusPoller
from kvserver.kvcommand_pb2 import Command, Op
from kvserver.replica import restore_machine
from kvserver.state_machine import KVStateMachine
from kvserver.storage import DiskStorage
from raftcore.raftpb_pb2 import ConfState, SnapshotMetadata
from rpc.loop import run

__all__ = ["NodeMemory", "RecoveryResult", "main", "measure"]

_NODES = 3
_TERM = 1
_POLL_S = 0.01


@dataclass
class NodeMemory:
    """One node process's resident memory, in bytes, once it serves with the keys loaded."""

    node: int
    vm_rss: int
    vm_hwm: int


@dataclass
class RecoveryResult:
    """Every figure of one run (times in seconds, sizes in bytes)."""

    keys: int
    key_size: int
    value_size: int
    snapshot_index: int
    snapshot_bytes: int
    snapshot_encode_s: float
    snapshot_dump_s: float
    restore_s: float
    memory_per_key_bytes: float
    cluster_restart_s: float
    cluster_listen_s: list[float]
    follower_restart_s: float
    nodes: list[NodeMemory] = field(default_factory=list)
    machine: str = ""


# -- building the data directories --------------------------------------------------------------


def _key(i: int, key_size: int) -> bytes:
    """The i-th key: ascending with i, exactly ``key_size`` bytes."""
    return b"k" + str(i).zfill(key_size - 1).encode()


def fill_machine(keys: int, key_size: int, value_size: int, seed: int) -> KVStateMachine:
    """A state machine that applied ``keys`` Put commands (keys ascending, random values)."""
    rng = random.Random(seed)
    machine = KVStateMachine(random.Random(seed))
    command = Command(client_id=b"bench.recovery", op=Op.OP_PUT)
    for i in range(keys):
        command.request_id = i + 1
        command.key = _key(i, key_size)
        command.value = rng.randbytes(value_size)
        machine.apply(command.SerializeToString())
    return machine


def write_snapshot(machine: KVStateMachine, data_dir: Path, index: int, fsync: bool) -> float:
    """Write ``machine``'s snapshot at ``index`` into a fresh DiskStorage in ``data_dir`` the way
    a replica does; returns the seconds it took."""
    meta = SnapshotMetadata(
        index=index, term=_TERM, conf_state=ConfState(voters=list(range(1, _NODES + 1)))
    )
    with DiskStorage(data_dir, fsync=fsync, voters=range(1, _NODES + 1)) as storage:
        start = time.perf_counter()
        writer = storage.snapshot_writer(meta)
        try:
            for chunk in machine.snapshot_chunks():
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        return time.perf_counter() - start


def _rss() -> int:
    return _proc_status(os.getpid())[0]


def _proc_status(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(rest.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


# -- the cluster ----------------------------------------------------------------------------------


async def _wait_listening(cluster: ProcCluster, i: int, deadline: float) -> None:
    host, port = cluster.servers[i]
    while True:
        cluster.check_alive()
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"node{i} did not listen in time") from None
            await asyncio.sleep(_POLL_S)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


def _clerk(cluster: ProcCluster) -> AsyncClerk:
    policy = RetryPolicy(initial_backoff_ms=5, max_backoff_ms=20)
    return AsyncClerk(cluster.servers, policy=policy, op_timeout=60.0, connect_timeout=0.2)


async def _start_and_serve(
    cluster: ProcCluster, key: bytes, expected: bytes, timeout: float
) -> tuple[float, list[float]]:
    """Start every node; (seconds until ``get(key)`` returned ``expected``, seconds until each
    node listened)."""
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    for i in range(_NODES):
        cluster.start(i)

    async def listened(i: int) -> float:
        await _wait_listening(cluster, i, deadline)
        return time.perf_counter() - start

    listen = await asyncio.gather(*(listened(i) for i in range(_NODES)))
    async with _clerk(cluster) as kv:
        value = await kv.get(key, timeout=max(0.1, deadline - time.monotonic()))
    served = time.perf_counter() - start
    if value != expected:
        raise RuntimeError(f"get({key!r}) after the restart returned {value!r}")
    return served, list(listen)


async def _put_through_raft(cluster: ProcCluster, writes: int, key_size: int) -> None:
    async with _clerk(cluster) as kv:
        for i in range(writes):
            key = b"w" + str(i).zfill(key_size - 1).encode()
            await kv.put(key, key, timeout=30.0)
            if await kv.get(key, timeout=30.0) != key:
                raise RuntimeError(f"a write through Raft did not read back: {key!r}")


async def _follower(cluster: ProcCluster) -> int:
    poller = StatusPoller(cluster.servers, timeout=1.0)
    try:
        for status in await poller.poll():
            if status.reply is not None and status.reply.Role == b"follower":
                return status.index
    finally:
        await poller.close()
    raise RuntimeError("no follower answered its status")


async def _restart_follower(cluster: ProcCluster, i: int, index: int, timeout: float) -> float:
    """Stop node i, start it again; seconds from the start until it reports Applied >= index."""
    cluster.stop(i)
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    cluster.start(i)
    await _wait_listening(cluster, i, deadline)
    poller = StatusPoller([cluster.servers[i]], timeout=1.0)
    try:
        while True:
            (status,) = await poller.poll()
            if status.reply is not None and status.reply.Applied >= index:
                return time.perf_counter() - start
            if time.monotonic() > deadline:
                raise TimeoutError(f"node{i} did not reach applied index {index} in time")
            cluster.check_alive()
            await asyncio.sleep(_POLL_S)
    finally:
        await poller.close()


async def _run_cluster(
    cluster: ProcCluster, args: argparse.Namespace, known: tuple[bytes, bytes]
) -> tuple[float, list[float], float, list[NodeMemory]]:
    key, value = known
    # A first start on the built directories, writes through Raft, then a clean stop: the timed
    # restart below recovers directories the nodes themselves have written to.
    await _start_and_serve(cluster, key, value, args.timeout)
    await _put_through_raft(cluster, args.writes, args.key_size)
    for i in range(_NODES):
        cluster.stop(i)
    restart_s, listen_s = await _start_and_serve(cluster, key, value, args.timeout)
    await _put_through_raft(cluster, 1, args.key_size)
    memory = [NodeMemory(i, *_proc_status(cluster.procs[i].pid)) for i in range(_NODES)]
    follower = await _follower(cluster)
    follower_s = await _restart_follower(cluster, follower, args.keys, args.timeout)
    return restart_s, listen_s, follower_s, memory


# -- the whole run --------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> RecoveryResult:
    """Run every measurement of the module docstring once, in a temporary directory."""
    if args.key_size < 2 or len(str(args.keys)) >= args.key_size:
        raise ValueError(f"--key-size {args.key_size} is too small for {args.keys} distinct keys")
    with tempfile.TemporaryDirectory(prefix="raftkv-recovery-") as tmp:
        workdir = Path(tmp)
        data = workdir / "data"
        machine = fill_machine(args.keys, args.key_size, args.value_size, args.seed)
        known_key = _key(args.keys // 2, args.key_size)
        known = (known_key, machine.get(known_key) or b"")
        start = time.perf_counter()
        for _ in machine.snapshot_chunks():
            pass
        encode_s = time.perf_counter() - start
        dump_s = [
            write_snapshot(machine, data / f"node{i}", args.keys, not args.no_fsync)
            for i in range(_NODES)
        ]
        del machine
        gc.collect()
        with DiskStorage(data / "node0", fsync=not args.no_fsync) as storage:
            snapshot_bytes = storage.snapshot_size()
            rss_before = _rss()
            restored = KVStateMachine(random.Random(args.seed))
            start = time.perf_counter()
            restore_machine(storage, restored)
            restore_s = time.perf_counter() - start
            if restored.get(known_key) != known[1] or len(restored) != args.keys:
                raise RuntimeError("the restored state machine differs from the one dumped")
            per_key = (_rss() - rss_before) / args.keys
            del restored
            gc.collect()
        cluster = ProcCluster(workdir, _NODES, log_level="WARNING")
        try:
            restart_s, listen_s, follower_s, memory = run(_run_cluster(cluster, args, known))
        finally:
            cluster.close()
    return RecoveryResult(
        keys=args.keys,
        key_size=args.key_size,
        value_size=args.value_size,
        snapshot_index=args.keys,
        snapshot_bytes=snapshot_bytes,
        snapshot_encode_s=encode_s,
        snapshot_dump_s=sorted(dump_s)[len(dump_s) // 2],
        restore_s=restore_s,
        memory_per_key_bytes=per_key,
        cluster_restart_s=restart_s,
        cluster_listen_s=listen_s,
        follower_restart_s=follower_s,
        nodes=memory,
        machine=f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
    )


def _lines(r: RecoveryResult) -> Iterator[str]:
    mib = 1 << 20
    yield (
        f"{r.keys} keys of {r.key_size} B, values of {r.value_size} B; {r.machine} "
        "(wall-clock; a shared machine counts other processes' load)"
    )
    yield f"snapshot size              {r.snapshot_bytes / mib:9.1f} MiB"
    yield f"snapshot encode            {r.snapshot_encode_s:9.2f} s   (event-loop stall)"
    yield f"snapshot dump to disk      {r.snapshot_dump_s:9.2f} s   (encode + write + fsync)"
    yield f"restore in process         {r.restore_s:9.2f} s"
    yield f"memory per key             {r.memory_per_key_bytes:9.0f} B   (RSS growth of restore)"
    listen = ", ".join(f"{s:.2f}" for s in r.cluster_listen_s)
    yield f"cluster restart to serve   {r.cluster_restart_s:9.2f} s   (nodes listening at {listen})"
    yield f"follower restart to apply  {r.follower_restart_s:9.2f} s"
    for m in r.nodes:
        yield (f"node{m.node} VmRSS {m.vm_rss / mib:7.1f} MiB   VmHWM {m.vm_hwm / mib:7.1f} MiB")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.recovery",
        description="Restart-to-serve time, memory and snapshot cost of a 3-node cluster "
        "holding N keys.",
    )
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys (default 1000000)")
    parser.add_argument("--key-size", type=int, default=16, help="key bytes (default 16)")
    parser.add_argument("--value-size", type=int, default=100, help="value bytes (default 100)")
    parser.add_argument("--writes", type=int, default=20, help="puts through Raft (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="values' random seed (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="give up on any one start after this (s)"
    )
    parser.add_argument(
        "--no-fsync", action="store_true", help="build the directories without fsync"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with ``argv`` (default sys.argv[1:]); return the exit code."""
    args = _parser().parse_args(argv)
    if args.keys < 1 or args.value_size < 0 or args.writes < 0:
        print("bench.recovery: --keys must be >= 1, sizes and --writes >= 0", file=sys.stderr)
        return 2
    try:
        result = measure(args)
    except ValueError as exc:
        print(f"bench.recovery: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        for line in _lines(result):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
