"""DiskStorage on the real file system: group commit, compaction, damaged files, the lock."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvserver.storage import CorruptionError, DataDirLockedError, DiskStorage
from kvserver.storage.records import scan_records
from raftcore.raftpb_pb2 import Entry
from raftcore.storage import StorageError
from tests.storage.helpers import entries, hard_state, snapshot_meta, state_of, write_snapshot
from tests.storage.simfs import SimFileSystem


def _segments(data: Path) -> list[Path]:
    return sorted(data.glob("wal-*.log"))


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_save_costs_one_sync_whatever_its_size() -> None:
    fs = SimFileSystem()
    storage = DiskStorage("/d", fs=fs)
    for first, count in ((1, 1), (2, 16), (18, 256)):
        before = fs.file_syncs, fs.ops
        storage.save(hard_state(1, commit=first), entries(first, first + count - 1, term=1))
        assert fs.file_syncs - before[0] == 1
        assert fs.ops - before[1] == 2  # one write, one sync


def test_fsync_off_warns_loudly_and_never_syncs(caplog: pytest.LogCaptureFixture) -> None:
    fs = SimFileSystem()
    with caplog.at_level(logging.WARNING, logger="kvserver.storage"):
        storage = DiskStorage("/d", fsync=False, fs=fs)
    assert "fsync is OFF" in caplog.text
    storage.save(hard_state(1), entries(1, 50, term=1))
    write_snapshot(storage, snapshot_meta(20, 1), b"s")
    assert fs.file_syncs == 0


def test_a_snapshot_deletes_old_segments_and_releases_memory(tmp_path: Path) -> None:
    storage = DiskStorage(tmp_path, segment_bytes=200)
    for first in range(1, 100, 5):
        storage.save(hard_state(1, commit=first), entries(first, first + 4, term=1))
    assert len(_segments(tmp_path)) > 10
    assert storage.entries_in_memory() == 100
    write_snapshot(storage, snapshot_meta(90, 1), b"state")
    assert storage.entries_in_memory() == 10
    assert len(_segments(tmp_path)) == 1
    assert [p.name for p in tmp_path.glob("snap-*")] == ["snap-00000000000000000090.snap"]
    storage.close()
    reopened = DiskStorage(tmp_path)
    assert (reopened.first_index(), reopened.last_index()) == (91, 100)
    assert reopened.entries_in_memory() == 10
    reopened.close()


def test_a_non_consecutive_batch_is_refused(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as storage:
        storage.save(None, entries(1, 2, term=1))
        before = state_of(storage)
        with pytest.raises(StorageError, match="not consecutive"):
            storage.save(None, [Entry(index=3, term=1), Entry(index=5, term=1)])
        assert state_of(storage) == before


def test_a_torn_tail_of_the_last_segment_is_cut_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with DiskStorage(tmp_path) as storage:
        storage.save(hard_state(1), entries(1, 6, term=1))
        storage.save(None, entries(7, 9, term=1))
    (segment,) = _segments(tmp_path)
    size = segment.stat().st_size
    os.truncate(segment, size - 7)
    with caplog.at_level(logging.WARNING, logger="kvserver.storage"):
        storage = DiskStorage(tmp_path)
    assert "torn record" in caplog.text and segment.name in caplog.text
    assert storage.last_index() == 8
    assert segment.stat().st_size < size - 7
    storage.save(None, entries(9, 9, term=2))
    storage.close()
    assert DiskStorage(tmp_path).term(9) == 2


def test_zeros_after_the_last_record_are_a_torn_tail(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as storage:
        storage.save(hard_state(1), entries(1, 3, term=1))
        expected = state_of(storage)
    (segment,) = _segments(tmp_path)
    with segment.open("ab") as f:
        f.write(bytes(4096))
    with DiskStorage(tmp_path) as storage:
        assert state_of(storage) == expected


def _record_offsets(segment: Path) -> list[int]:
    scanned = scan_records(segment.read_bytes(), str(segment), tail_may_be_torn=False)
    return [record.offset for record in scanned.records]


def test_a_flipped_bit_inside_the_last_segment_stops_the_open(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as storage:
        for i in range(1, 6):
            storage.save(hard_state(1, commit=i), entries(i, i, term=1))
    (segment,) = _segments(tmp_path)
    raw = segment.read_bytes()
    offset = raw.index(b"e3-t1")
    record = max(o for o in _record_offsets(segment) if o < offset)
    _flip(segment, offset)
    damaged = segment.read_bytes()
    with pytest.raises(CorruptionError) as caught:
        DiskStorage(tmp_path)
    error = caught.value
    assert (error.path, error.offset) == (str(segment), record)
    assert "payload checksum" in error.problem
    assert f"byte offset {record}" in str(error) and "docs/storage.md" in str(error)
    assert segment.read_bytes() == damaged  # nothing was cut or repaired behind the operator's back


def test_a_flipped_length_inside_the_last_segment_is_not_mistaken_for_a_torn_tail(
    tmp_path: Path,
) -> None:
    with DiskStorage(tmp_path) as storage:
        for i in range(1, 6):
            storage.save(None, entries(i, i, term=1))
    (segment,) = _segments(tmp_path)
    record = _record_offsets(segment)[3]
    _flip(segment, record + 1)  # the length now points far past the end of the file
    with pytest.raises(CorruptionError, match="header checksum") as caught:
        DiskStorage(tmp_path)
    assert caught.value.offset == record


def test_damage_at_the_tail_of_an_older_segment_stops_the_open(tmp_path: Path) -> None:
    with DiskStorage(tmp_path, segment_bytes=150) as storage:
        for i in range(1, 20):
            storage.save(None, entries(i, i, term=1))
    first = _segments(tmp_path)[0]
    _flip(first, first.stat().st_size - 1)
    with pytest.raises(CorruptionError, match=first.name):
        DiskStorage(tmp_path)
    os.truncate(first, first.stat().st_size - 3)
    with pytest.raises(CorruptionError, match="only the end of the newest segment"):
        DiskStorage(tmp_path)


def test_a_missing_segment_stops_the_open(tmp_path: Path) -> None:
    with DiskStorage(tmp_path, segment_bytes=150) as storage:
        for i in range(1, 20):
            storage.save(None, entries(i, i, term=1))
    segments = _segments(tmp_path)
    assert len(segments) >= 3
    segments[1].unlink()
    with pytest.raises(CorruptionError, match="missing"):
        DiskStorage(tmp_path)


@pytest.mark.parametrize("where", ["header", "data", "trailer", "truncated"])
def test_a_damaged_snapshot_file_stops_the_open(tmp_path: Path, where: str) -> None:
    with DiskStorage(tmp_path) as storage:
        storage.save(hard_state(1), entries(1, 5, term=1))
        write_snapshot(storage, snapshot_meta(4, 1), b"the state machine at 4" * 50)
    (snap,) = tmp_path.glob("snap-*.snap")
    size = snap.stat().st_size
    if where == "truncated":
        os.truncate(snap, size - 100)
    else:
        _flip(snap, {"header": 18, "data": size // 2, "trailer": size - 10}[where])
    with pytest.raises(CorruptionError, match=snap.name) as caught:
        DiskStorage(tmp_path)
    assert "docs/storage.md" in str(caught.value)


def test_a_second_storage_in_this_process_is_refused(tmp_path: Path) -> None:
    with DiskStorage(tmp_path), pytest.raises(DataDirLockedError, match=str(os.getpid())):
        DiskStorage(tmp_path)
    DiskStorage(tmp_path).close()


_HOLDER = """
import sys
from kvserver.storage import DiskStorage
storage = DiskStorage(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
storage.close()
"""


def test_a_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirLockedError) as caught:
            DiskStorage(tmp_path)
        assert caught.value.holder == str(holder.pid)
        assert f"locked by process {holder.pid}" in str(caught.value)
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
    DiskStorage(tmp_path).close()


def test_leftovers_of_an_interrupted_cleanup_are_removed_even_with_gaps(tmp_path: Path) -> None:
    storage = DiskStorage(tmp_path, segment_bytes=150)
    for i in range(1, 20):
        storage.save(None, entries(i, i, term=1))
    old = {p.name: p.read_bytes() for p in _segments(tmp_path)}
    assert len(old) >= 3
    write_snapshot(storage, snapshot_meta(15, 1), b"s")
    expected = state_of(storage)
    storage.close()
    # A crash during the cleanup whose unlinks reached the disk out of order.
    names = sorted(old)
    for name in (names[0], names[2]):
        (tmp_path / name).write_bytes(old[name])
    with DiskStorage(tmp_path) as reopened:
        assert state_of(reopened) == expected
    assert len(_segments(tmp_path)) == 1


def test_a_missing_snapshot_file_stops_the_open(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as storage:
        storage.save(hard_state(1), entries(1, 5, term=1))
        write_snapshot(storage, snapshot_meta(4, 1), b"s")
    (snap,) = tmp_path.glob("snap-*.snap")
    snap.unlink()
    with pytest.raises(CorruptionError, match="snapshot file is missing"):
        DiskStorage(tmp_path)


def test_a_commit_only_save_is_written_without_a_sync_and_covered_by_the_next() -> None:
    """save(sync=False) (a Ready whose must_sync is False) costs a write and no fdatasync; a
    crash may lose it, never what was synced before it, and the next synced save covers it."""
    fs = SimFileSystem()
    storage = DiskStorage("/d", fs=fs)
    storage.save(hard_state(1, commit=1), entries(1, 3, term=1))
    syncs = fs.file_syncs
    storage.save(hard_state(1, commit=3), [], sync=False)
    assert fs.file_syncs == syncs
    assert state_of(DiskStorage("/d", fs=fs.crash_image()))[0][2] == 1
    storage.save(None, entries(4, 4, term=1))
    assert fs.file_syncs == syncs + 1
    assert state_of(DiskStorage("/d", fs=fs.crash_image()))[0][2] == 3
