"""kill -9 of a real node in the middle of a snapshot install and at a segment roll.

The simulated file system (tests/storage) covers power loss at every write and sync; these tests
check the same code paths hold up in real processes on a real disk, where what a SIGKILL leaves is
whatever the kernel has (synced or not):

- A follower far behind, restarted, receives a multi-chunk snapshot (8 MiB of state, 1 MiB
  chunks). The test watches its data directory and kills it as soon as the temporary snapshot file
  of that install appears, checks from the directory that the install really was cut (the
  temporary file is there, no snapshot at that index is), restarts it, and requires that it
  recovers (removing the leftover), installs the snapshot and catches up.
- Under heavy writes with 32 KiB segments, a node is killed the moment its data directory shows a
  segment roll (the next segment's temporary file, i.e. mid-roll, or else the new segment file
  just after the switch), restarted, and must recover and catch up. Three rounds, leader and
  followers; at least one kill must land mid-roll.

After each scenario every write a client was acknowledged must read back with its value, from the
load-client processes (see ``workload.py``) and from the test's own writer alike.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from workload import ClientLoad

from cluster.processes import ProcCluster

MakeCluster = Callable[..., ProcCluster]
MakeLoad = Callable[..., ClientLoad]

pytestmark = pytest.mark.timeout(150)

BIG_KEYS = 32
BIG_VALUE_BYTES = 256 << 10  # 32 x 256 KiB: an 8 MiB snapshot, 8 chunks of 1 MiB
SEGMENT_BYTES = 32 << 10
ROLL_ROUNDS = 3
_SNAPSHOT = re.compile(r"^snap-(\d{20})\.snap(\.\d+\.tmp)?$")
_SEGMENT = re.compile(r"^wal-(\d{16})\.log(\.tmp)?$")


def run(coro: Coroutine[Any, Any, None], timeout: float = 140.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def node_dir(cluster: ProcCluster, i: int) -> Path:
    return cluster.workdir / "data" / f"node{i}"


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def snapshot_files(path: Path) -> tuple[list[int], list[int]]:
    """Indexes of the installed snapshot files and of the temporary ones in ``path``."""
    installed, temporary = [], []
    for name in _listdir(path):
        match = _SNAPSHOT.match(name)
        if match:
            (temporary if match.group(2) else installed).append(int(match.group(1)))
    return sorted(installed), sorted(temporary)


def segment_files(path: Path) -> tuple[list[int], list[int]]:
    """Sequence numbers of the segment files and of the temporary (being created) ones."""
    done, temporary = [], []
    for name in _listdir(path):
        match = _SEGMENT.match(name)
        if match:
            (temporary if match.group(2) else done).append(int(match.group(1)))
    return sorted(done), sorted(temporary)


def kill_when(
    cluster: ProcCluster, i: int, seen: Callable[[], str | None], timeout: float
) -> str | None:
    """Poll ``seen`` in a tight loop; SIGKILL node i the moment it returns a description (which
    is returned), or give up after ``timeout`` seconds (None). Node i is reaped either way only
    if it was killed."""
    pid = cluster.procs[i].pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        what = seen()
        if what is not None:
            os.kill(pid, signal.SIGKILL)
            cluster.kill(i)  # reaps it
            return what
    return None


@dataclass
class Writer:
    """Puts unique keys with large values in a loop; remembers what was acknowledged."""

    cluster: ProcCluster
    value_bytes: int
    acked: dict[str, bytes] = field(default_factory=dict)
    attempted: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)

    async def put(self, kv: Any, key: str, value: bytes) -> None:
        self.attempted.add(key)
        await kv.put(key, value)
        self.acked[key] = value

    async def run(self, prefix: str) -> None:
        async with self.cluster.clerk(op_timeout=20.0) as kv:
            n = 0
            while not self.stop.is_set():
                await self.put(kv, f"{prefix}{n:06d}", _value(prefix, n, self.value_bytes))
                n += 1

    async def verify(self, prefix: str) -> None:
        """Every acknowledged put reads back with its value; no key nobody attempted exists."""
        async with self.cluster.clerk(op_timeout=20.0) as kv:
            end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            stored = {k.decode(): v for k, v in await kv.scan(prefix, end)}
        lost = sorted(k for k, v in self.acked.items() if stored.get(k) != v)
        assert not lost, f"acknowledged puts lost or changed: {lost[:10]} ({len(lost)})"
        invented = sorted(set(stored) - self.attempted)
        assert not invented, f"puts nobody made: {invented[:10]}"
        assert self.acked, "no put was acknowledged"


def _value(prefix: str, n: int, size: int) -> bytes:
    head = f"{prefix}{n}:".encode()
    return head + bytes((n + k) % 251 for k in range(size - len(head)))


async def wait_caught_up(cluster: ProcCluster, i: int, timeout: float = 30.0) -> None:
    """Until node i has applied everything the others had committed when this was called."""
    others = [s.reply for s in await cluster.statuses() if s.index != i and s.reply]
    target = max(r.Commit for r in others)
    async with asyncio.timeout(timeout):
        while True:
            cluster.check_alive()
            reply = (await cluster.statuses())[i].reply
            if reply is not None and reply.Applied >= target:
                return
            await asyncio.sleep(0.05)


@contextmanager
def running_writer(writer: Writer, prefix: str) -> Iterator[None]:
    """Run ``writer`` on its own thread and event loop (the test's loop polls directories)."""
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(writer.run(prefix))
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=main, name="writer")
    thread.start()
    try:
        yield
    finally:
        writer.stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the writer did not stop"
    if errors:
        raise errors[0]


def test_kill_a_follower_in_the_middle_of_a_snapshot_install(
    make_cluster: MakeCluster, make_load: MakeLoad
) -> None:
    cluster = make_cluster(3, max_raft_state=1 << 20)
    writer = Writer(cluster, BIG_VALUE_BYTES)

    async def main() -> None:
        leader, _ = await cluster.wait_leader(timeout=20)
        lagging = (leader + 1) % 3
        before = (await cluster.statuses())[lagging].reply
        assert before is not None
        cluster.kill(lagging)
        load = make_load(cluster)
        await load.wait_running()
        async with cluster.clerk(op_timeout=20.0) as kv:
            for n in range(BIG_KEYS):
                await writer.put(kv, f"big/{n:06d}", _value("big/", n, BIG_VALUE_BYTES))
        # The others compact past everything the lagging node has: only a snapshot helps it.
        async with asyncio.timeout(40):
            while True:
                others = [s.reply for s in await cluster.statuses() if s.index != lagging]
                if all(r is not None and r.SnapshotIndex > before.LastIndex for r in others):
                    break
                await asyncio.sleep(0.1)
        directory = node_dir(cluster, lagging)
        assert snapshot_files(directory)[0] == [], "the lagging node had no snapshot of its own"

        def installing() -> str | None:
            temporary = [i for i in snapshot_files(directory)[1] if i > before.LastIndex]
            return f"snapshot {temporary[0]} being written" if temporary else None

        cluster.start(lagging)
        killed = await asyncio.to_thread(kill_when, cluster, lagging, installing, 30.0)
        assert killed is not None, "the snapshot install never started"
        installed, temporary = snapshot_files(directory)
        cut = [i for i in temporary if i > before.LastIndex]
        assert cut, f"killed ({killed}) but no temporary snapshot file is left: {temporary}"
        assert not [i for i in installed if i >= cut[0]], "the install had already finished"
        cut_size = sum(
            (directory / name).stat().st_size
            for name in _listdir(directory)
            if name.startswith(f"snap-{cut[0]:020d}.snap.")
        )
        assert cut_size < BIG_KEYS * BIG_VALUE_BYTES, "the whole snapshot had arrived"

        cluster.start(lagging)
        await wait_caught_up(cluster, lagging)
        reply = (await cluster.statuses())[lagging].reply
        assert reply is not None and reply.SnapshotIndex >= cut[0]
        log = cluster.log(lagging)
        assert re.search(r"removing leftover temporary file snap-\d+\.snap\.\d+\.tmp", log)
        assert snapshot_files(directory)[1] == []
        load.stop()
        await load.verify()
        load.check_linearizable()
        await writer.verify("big/")
        print(f"killed mid-install: {killed}, {cut_size} of ~{BIG_KEYS * BIG_VALUE_BYTES} bytes")

    run(main())


def test_kill_nodes_at_segment_rolls_under_heavy_writes(
    tmp_path: Path, make_load: MakeLoad
) -> None:
    # No snapshots (their rebase segments are born through a temporary file too): only rolls.
    cluster = ProcCluster(
        tmp_path, 3, max_raft_state=0, extra_args=["--segment-bytes", str(SEGMENT_BYTES)]
    )
    writer = Writer(cluster, 8 << 10)
    outcomes: list[str] = []

    async def main() -> None:
        cluster.start_all()
        await cluster.wait_leader(timeout=20)
        load = make_load(cluster)
        await load.wait_running()
        with running_writer(writer, "roll/"):
            for round_ in range(ROLL_ROUNDS):
                leader, _ = await cluster.wait_leader(timeout=20)
                victim = leader if round_ % 2 == 0 else (leader + 1) % 3
                directory = node_dir(cluster, victim)
                start_segments = segment_files(directory)[0]

                def mid_roll(directory: Path = directory) -> str | None:
                    temporary = segment_files(directory)[1]
                    return f"wal-{temporary[0]:016d}.log.tmp" if temporary else None

                def after_roll(
                    directory: Path = directory, start: list[int] = start_segments
                ) -> str | None:
                    done = segment_files(directory)[0]
                    return f"wal-{done[-1]:016d}.log" if done[-1:] > start[-1:] else None

                # Rolls come every few milliseconds here; a kill lands between the creation and
                # the rename of the next segment's temporary file within seconds. Only if none
                # does, the kill lands just after a roll instead.
                killed = await asyncio.to_thread(kill_when, cluster, victim, mid_roll, 15.0)
                if killed is None:
                    killed = await asyncio.to_thread(kill_when, cluster, victim, after_roll, 15.0)
                    assert killed is not None, f"node{victim} never rolled a segment"
                    outcome = f"just after the roll to {killed}"
                elif killed in _listdir(directory):
                    outcome = f"mid-roll: the kill left {killed}"
                else:
                    outcome = f"just after a roll: {killed} was renamed before the kill landed"
                outcomes.append(f"node{victim}: {outcome}")
                cluster.start(victim)
                await wait_caught_up(cluster, victim)
                if outcome.startswith("mid-roll"):
                    log = cluster.log(victim)
                    assert f"removing leftover temporary file {killed}" in log, outcome
        load.stop()
        await load.verify()
        load.check_linearizable()
        await writer.verify("roll/")
        print("kills:", outcomes)
        assert any("mid-roll" in what for what in outcomes), outcomes

    try:
        run(main())
    finally:
        cluster.close()
