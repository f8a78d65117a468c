"""kill -9 of a real process in the middle of saving and snapshotting: nothing acknowledged is lost.

A child process appends entries (with their hard state) and takes a snapshot every so often,
printing each index once ``save()`` returned. The test kills it with SIGKILL at a random moment,
reopens the directory, checks that every acknowledged entry (or the snapshot covering it) is there
with the right content, and repeats from the recovered state.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from kvserver.storage import DiskStorage

_CHILD = """
import sys
from kvserver.storage import DiskStorage
from raftcore.raftpb_pb2 import Entry, HardState, SnapshotMetadata

storage = DiskStorage(sys.argv[1], segment_bytes=4096)
index = storage.last_index()
while True:
    count = 1 + index % 7
    batch = [Entry(term=1, index=index + k, data=b"v%d" % (index + k)) for k in range(1, count + 1)]
    index += count
    storage.save(HardState(term=1, vote=1, commit=index), batch)
    print(index, flush=True)
    if index % 50 < count:
        writer = storage.snapshot_writer(SnapshotMetadata(index=index - 3, term=1))
        writer.write(b"state up to %d" % (index - 3))
        writer.commit()
"""


def _check(data_dir: Path, acknowledged: int) -> int:
    with DiskStorage(data_dir) as storage:
        last = storage.last_index()
        assert last >= acknowledged
        assert storage.initial_state()[0].commit >= acknowledged
        first = storage.first_index()
        for entry in storage.entries(first, last + 1):
            assert entry.data == b"v%d" % entry.index
        if first > 1:
            assert storage.read_snapshot(0, 100) == b"state up to %d" % (first - 1)
        return last


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(4)
    root = Path(__file__).resolve().parents[2]
    acknowledged = 0
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        try:
            assert child.stdout is not None
            # Timed from the first acknowledgement: starting Python on a loaded machine is slow.
            first = child.stdout.readline()
            assert first, "the child stopped on its own"
            acknowledged = int(first)
            deadline = time.monotonic() + rng.uniform(0.3, 0.8)
            while time.monotonic() < deadline:
                line = child.stdout.readline()
                assert line, "the child stopped on its own"
                acknowledged = int(line)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
        acknowledged = max(acknowledged, _check(tmp_path, acknowledged))
    assert acknowledged > 20
    with DiskStorage(tmp_path) as storage:
        assert storage.first_index() > 1  # snapshots were taken (and maybe killed) along the way
