"""Full disks and failing syncs: typed errors, nothing durable damaged, writes work again after."""

from __future__ import annotations

import errno

import pytest

from kvserver.storage import DiskStorage, StorageFullError, StorageIOError
from tests.storage.helpers import entries, hard_state, snapshot_meta, state_of, write_snapshot
from tests.storage.simfs import SimFileSystem

DIR = "/data"


def _open(fs: SimFileSystem, segment_bytes: int = 4096) -> DiskStorage:
    return DiskStorage(DIR, voters=(1, 2, 3), segment_bytes=segment_bytes, fs=fs)


def _segment_sizes(fs: SimFileSystem) -> dict[str, int]:
    return {n: fs.size(f"{DIR}/{n}") for n in sorted(fs.listdir(DIR)) if n.endswith(".log")}


def test_full_disk_on_save_rolls_back_and_recovers_once_space_is_back() -> None:
    fs = SimFileSystem()
    storage = _open(fs)
    storage.save(hard_state(1, vote=1), entries(1, 5, term=1))
    acknowledged = state_of(storage)
    sizes = _segment_sizes(fs)
    fs.capacity = fs.used() + 40  # room for part of the next batch only
    with pytest.raises(StorageFullError, match="disk is full") as caught:
        storage.save(hard_state(2), entries(6, 20, term=2))
    assert caught.value.errno == errno.ENOSPC
    assert state_of(storage) == acknowledged
    assert _segment_sizes(fs) == sizes  # the partial write was cut off again
    assert state_of(_open(fs.crash_image("keep"))) == acknowledged
    with pytest.raises(StorageFullError):  # still full: still refused, still intact
        storage.save(None, entries(6, 20, term=2))
    fs.capacity = None
    storage.save(hard_state(2), entries(6, 20, term=2))
    expected = state_of(storage)
    assert state_of(_open(fs.crash_image("drop"))) == expected
    assert expected[5][-1][0] == 20


def test_full_disk_when_rolling_a_segment_is_reported_and_harmless() -> None:
    fs = SimFileSystem()
    storage = _open(fs, segment_bytes=100)
    storage.save(None, entries(1, 5, term=1))
    acknowledged = state_of(storage)
    fs.capacity = fs.used()
    with pytest.raises(StorageFullError):
        storage.save(None, entries(6, 6, term=1))
    assert state_of(_open(fs.crash_image("keep"))) == acknowledged
    fs.capacity = None
    storage.save(None, entries(6, 6, term=1))
    assert state_of(_open(fs.crash_image("drop")))[5][-1][0] == 6


def test_full_disk_during_a_snapshot_keeps_the_previous_one() -> None:
    fs = SimFileSystem()
    storage = _open(fs)
    storage.save(hard_state(1), entries(1, 10, term=1))
    write_snapshot(storage, snapshot_meta(3, 1), b"old snapshot")
    before = state_of(storage)
    fs.capacity = fs.used() + 100
    with pytest.raises(StorageFullError):
        write_snapshot(storage, snapshot_meta(8, 1), b"x" * 500)
    assert state_of(storage) == before
    assert not [n for n in fs.listdir(DIR) if n.endswith(".tmp")]
    assert state_of(_open(fs.crash_image("keep"))) == before
    fs.capacity = None
    write_snapshot(storage, snapshot_meta(8, 1), b"x" * 500)
    assert state_of(_open(fs.crash_image("drop")))[2] == 8


def test_full_disk_when_writing_the_rebase_segment_undoes_the_snapshot_file() -> None:
    fs = SimFileSystem()
    storage = _open(fs)
    storage.save(hard_state(1), entries(1, 10, term=1))
    before = state_of(storage)
    # Room for the snapshot file (header, 5 bytes, trailer) but not for the new segment.
    fs.capacity = fs.used() + 60
    with pytest.raises(StorageFullError, match="creating segment"):
        write_snapshot(storage, snapshot_meta(2, 1), b"small")
    assert state_of(storage) == before
    assert [n for n in fs.listdir(DIR) if n.endswith(".snap")] == []
    fs.capacity = None
    storage.save(None, entries(11, 12, term=1))
    assert state_of(_open(fs.crash_image("drop"))) == state_of(storage)


def test_failed_sync_rolls_back_and_the_next_save_works() -> None:
    fs = SimFileSystem()
    storage = _open(fs)
    storage.save(hard_state(1), entries(1, 3, term=1))
    acknowledged = state_of(storage)
    fs.fail_syncs = [errno.EIO]
    with pytest.raises(StorageIOError) as caught:
        storage.save(hard_state(2), entries(4, 6, term=2))
    assert not isinstance(caught.value, StorageFullError)
    assert caught.value.errno == errno.EIO
    assert state_of(storage) == acknowledged
    assert state_of(_open(fs.crash_image("keep"))) == acknowledged
    storage.save(hard_state(2), entries(4, 6, term=2))
    assert state_of(_open(fs.crash_image("drop"))) == state_of(storage)


def test_a_failed_synced_save_after_unsynced_ones_stops_writes() -> None:
    """A commit-only save (no sync) then a synced save whose fdatasync fails: the kernel may have
    dropped the earlier save's dirty pages too, which cutting the failed batch off does not
    bring back, so storage stops writes as a failed sync() does (only a clean tail may be cut
    off and retried)."""
    fs = SimFileSystem()
    storage = _open(fs)
    storage.save(hard_state(1), entries(1, 3, term=1))
    acknowledged = state_of(_open(fs.crash_image("drop")))
    storage.save(hard_state(1, commit=3), [], sync=False)
    fs.fail_syncs = [errno.EIO]
    with pytest.raises(StorageIOError):
        storage.save(None, entries(4, 4, term=1))
    with pytest.raises(StorageIOError, match="reopen"):
        storage.save(None, entries(4, 4, term=1))
    storage.close()
    assert state_of(_open(fs.crash_image("drop"))) == acknowledged


def test_a_failed_rollback_stops_writes_until_reopened() -> None:
    fs = SimFileSystem()
    storage = _open(fs)
    storage.save(hard_state(1), entries(1, 3, term=1))
    acknowledged = state_of(storage)
    fs.fail_syncs = [errno.EIO, errno.EIO]  # the save's sync, then the rollback's
    with pytest.raises(StorageIOError):
        storage.save(None, entries(4, 4, term=1))
    with pytest.raises(StorageIOError, match="reopen"):
        storage.save(None, entries(4, 4, term=1))
    with pytest.raises(StorageIOError, match="reopen"):
        storage.snapshot_writer(snapshot_meta(2, 1))
    assert state_of(storage) == acknowledged  # reads still work
    storage.close()
    reopened = _open(fs.crash_image("drop"))
    assert state_of(reopened) == acknowledged
    reopened.save(None, entries(4, 4, term=1))
    assert reopened.last_index() == 4


def test_a_failed_deferred_sync_stops_writes_and_reopening_shows_what_is_durable() -> None:
    """save(sync=False) then a failing sync() (the node's off-loop fdatasync): the save is in
    memory but maybe not on disk, so storage refuses every further write; reopening reads back
    only what an earlier sync made durable."""
    fs = SimFileSystem()
    storage = _open(fs)
    storage.save(hard_state(1), entries(1, 3, term=1))
    acknowledged = state_of(_open(fs.crash_image("drop")))
    storage.save(hard_state(1, commit=3), entries(4, 5, term=1), sync=False)
    fs.fail_syncs = [errno.EIO]
    with pytest.raises(StorageIOError) as caught:
        storage.sync()
    assert caught.value.errno == errno.EIO
    with pytest.raises(StorageIOError, match="reopen"):
        storage.save(None, entries(6, 6, term=1))
    with pytest.raises(StorageIOError, match="reopen"):
        storage.sync()
    storage.close()
    assert state_of(_open(fs.crash_image("drop"))) == acknowledged


def test_a_failed_sync_of_the_full_segment_at_a_roll_stops_writes() -> None:
    """A roll syncs the full segment first when an unsynced save sits at its end; if that sync
    fails, the save raises, nothing is written to a new segment, and writes stop as after a
    failed sync(): the unsynced save may be gone from the disk."""
    fs = SimFileSystem()
    storage = _open(fs, segment_bytes=520)
    storage.save(hard_state(1), entries(1, 15, term=1, tag=b"x"))
    acknowledged = state_of(_open(fs.crash_image("drop")))
    storage.save(hard_state(1, commit=15), [], sync=False)  # fills the segment past its limit
    segments = _segment_sizes(fs)
    assert len(segments) == 1
    fs.fail_syncs = [errno.EIO]
    with pytest.raises(StorageIOError) as caught:
        storage.save(None, entries(16, 16, term=1))
    assert caught.value.errno == errno.EIO
    assert _segment_sizes(fs) == segments  # no new segment
    with pytest.raises(StorageIOError, match="reopen"):
        storage.save(None, entries(16, 16, term=1))
    storage.close()
    assert state_of(_open(fs.crash_image("drop"))) == acknowledged
