"""The storage contract (raftcore.storage), the same assertions for MemoryStorage and DiskStorage.

Each test that changes state also restarts the node and checks the state is unchanged: for the
disk that reopens the directory; for memory it is the simulated cluster's copy.
"""

from __future__ import annotations

import pytest

from raftcore.raftpb_pb2 import ConfState, HardState
from raftcore.storage import CompactedError, StorageError, UnavailableError
from tests.storage.helpers import (
    VOTERS,
    Restartable,
    entries,
    hard_state,
    snapshot_meta,
    state_of,
    write_snapshot,
)


def test_fresh_storage_is_empty_with_its_configuration(node: Restartable) -> None:
    s = node.storage
    assert s.initial_state() == (HardState(), ConfState(voters=list(VOTERS)))
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
    assert (s.snapshot_metadata().index, s.snapshot_metadata().term) == (0, 0)
    assert (s.snapshot_size(), s.read_snapshot(0, 10)) == (0, b"")
    assert s.entries(1, 1) == []


def test_saved_entries_and_hard_state_are_read_back_and_survive_restart(node: Restartable) -> None:
    batch = entries(1, 5, term=2)
    node.storage.save(hard_state(2, vote=1, commit=3), batch)
    for s in (node.storage, node.restart()):
        assert s.initial_state()[0] == hard_state(2, vote=1, commit=3)
        assert (s.first_index(), s.last_index()) == (1, 5)
        assert s.entries(1, 6) == batch
        assert [s.term(i) for i in range(0, 6)] == [0, 2, 2, 2, 2, 2]


def test_hard_state_none_means_unchanged(node: Restartable) -> None:
    node.storage.save(hard_state(3, vote=2), [])
    node.storage.save(None, entries(1, 2, term=3))
    assert node.restart().initial_state()[0] == hard_state(3, vote=2)


def test_term_and_entries_raise_outside_the_log(node: Restartable) -> None:
    node.storage.save(None, entries(1, 10, term=1))
    write_snapshot(node.storage, snapshot_meta(4, 1), b"snap")
    s = node.storage
    with pytest.raises(CompactedError):
        s.term(3)
    assert s.term(4) == 1
    with pytest.raises(UnavailableError):
        s.term(11)
    with pytest.raises(CompactedError):
        s.entries(4, 6)
    with pytest.raises(UnavailableError):
        s.entries(9, 12)
    assert [e.index for e in s.entries(5, 11)] == list(range(5, 11))


def test_max_bytes_limits_but_returns_at_least_one_entry(node: Restartable) -> None:
    batch = entries(1, 6, term=1)
    node.storage.save(None, batch)
    size = batch[0].ByteSize()
    assert all(e.ByteSize() == size for e in batch)
    s = node.storage
    assert len(s.entries(1, 7, max_bytes=1)) == 1
    assert len(s.entries(1, 7, max_bytes=3 * size)) == 3
    assert len(s.entries(1, 7, max_bytes=3 * size + size - 1)) == 3
    assert len(s.entries(1, 7, max_bytes=100 * size)) == 6


def test_overwriting_the_tail_truncates_it_for_good(node: Restartable) -> None:
    node.storage.save(hard_state(1), entries(1, 8, term=1))
    replacement = entries(4, 5, term=2)
    node.storage.save(hard_state(2), replacement)
    expected = entries(1, 3, term=1) + replacement
    for s in (node.storage, node.restart()):
        assert s.last_index() == 5
        assert s.entries(1, 6) == expected
        with pytest.raises(UnavailableError):
            s.term(6)


def test_append_past_the_end_is_refused_and_changes_nothing(node: Restartable) -> None:
    node.storage.save(None, entries(1, 3, term=1))
    before = state_of(node.storage)
    with pytest.raises(StorageError):
        node.storage.save(hard_state(9), entries(5, 6, term=1))
    assert state_of(node.storage) == before
    assert state_of(node.restart()) == before


def test_snapshot_on_an_agreeing_log_keeps_the_suffix(node: Restartable) -> None:
    node.storage.save(hard_state(1, commit=2), entries(1, 10, term=1))
    write_snapshot(node.storage, snapshot_meta(6, 1), b"state at 6" * 10)
    for s in (node.storage, node.restart()):
        assert (s.first_index(), s.last_index()) == (7, 10)
        assert s.entries(7, 11) == entries(7, 10, term=1)
        meta = s.snapshot_metadata()
        assert (meta.index, meta.term, list(meta.conf_state.voters)) == (6, 1, [1, 2, 3])
        assert s.initial_state()[0] == hard_state(1, commit=6)
        assert s.snapshot_size() == 100
        assert s.read_snapshot(0, 100) == b"state at 6" * 10
        assert s.read_snapshot(95, 10) == b" at 6"


def test_snapshot_reads_by_offset(node: Restartable) -> None:
    data = bytes(range(256)) * 3
    write_snapshot(node.storage, snapshot_meta(2, 1), data)
    for s in (node.storage, node.restart()):
        assert s.snapshot_size() == len(data)
        assert s.read_snapshot(0, len(data)) == data
        assert s.read_snapshot(10, 20) == data[10:30]
        assert s.read_snapshot(len(data) - 5, 100) == data[-5:]
        assert s.read_snapshot(len(data), 10) == b""


def test_snapshot_contradicting_the_log_discards_it(node: Restartable) -> None:
    node.storage.save(hard_state(1), entries(1, 10, term=1))
    write_snapshot(node.storage, snapshot_meta(6, 2), b"leader's")
    for s in (node.storage, node.restart()):
        assert (s.first_index(), s.last_index(), s.term(6)) == (7, 6, 2)
        assert s.entries(7, 7) == []
        assert s.read_snapshot(0, 100) == b"leader's"


def test_snapshot_beyond_the_log_discards_it(node: Restartable) -> None:
    node.storage.save(hard_state(1), entries(1, 3, term=1))
    write_snapshot(node.storage, snapshot_meta(20, 3), b"far ahead")
    for s in (node.storage, node.restart()):
        assert (s.first_index(), s.last_index(), s.term(20)) == (21, 20, 3)
        assert s.initial_state()[0].commit == 20


def test_entries_after_a_snapshot_append_and_survive(node: Restartable) -> None:
    node.storage.save(hard_state(1), entries(1, 5, term=1))
    write_snapshot(node.storage, snapshot_meta(5, 1), b"s")
    node.storage.save(hard_state(2, commit=6), entries(6, 9, term=2))
    for s in (node.storage, node.restart()):
        assert s.entries(6, 10) == entries(6, 9, term=2)
        assert s.initial_state()[0] == hard_state(2, commit=6)


def test_older_or_equal_snapshot_is_ignored(node: Restartable) -> None:
    node.storage.save(hard_state(1), entries(1, 10, term=1))
    write_snapshot(node.storage, snapshot_meta(6, 1), b"six")
    before = state_of(node.storage)
    write_snapshot(node.storage, snapshot_meta(4, 1), b"four")
    write_snapshot(node.storage, snapshot_meta(6, 1), b"six again")
    assert state_of(node.storage) == before
    assert state_of(node.restart()) == before


def test_commit_is_never_lowered_by_a_snapshot(node: Restartable) -> None:
    node.storage.save(hard_state(1, commit=9), entries(1, 10, term=1))
    write_snapshot(node.storage, snapshot_meta(5, 1), b"x")
    assert node.restart().initial_state()[0].commit == 9


def test_aborted_snapshot_changes_nothing(node: Restartable) -> None:
    node.storage.save(hard_state(1), entries(1, 4, term=1))
    before = state_of(node.storage)
    writer = node.storage.snapshot_writer(snapshot_meta(3, 1))
    writer.write(b"half a snapshot")
    writer.abort()
    assert state_of(node.storage) == before
    assert state_of(node.restart()) == before


def test_a_closed_snapshot_writer_refuses_more(node: Restartable) -> None:
    writer = node.storage.snapshot_writer(snapshot_meta(1, 1))
    writer.commit()
    with pytest.raises(StorageError):
        writer.write(b"late")
    with pytest.raises(StorageError):
        writer.commit()


def test_batch_wholly_covered_by_the_snapshot_changes_nothing(node: Restartable) -> None:
    node.storage.save(hard_state(1), entries(1, 10, term=1))
    write_snapshot(node.storage, snapshot_meta(6, 1), b"s")
    before = state_of(node.storage)
    node.storage.save(None, entries(3, 5, term=1))
    assert state_of(node.storage) == before
    assert state_of(node.restart()) == before


def test_batch_straddling_the_snapshot_keeps_what_lies_beyond(node: Restartable) -> None:
    node.storage.save(hard_state(1), entries(1, 10, term=1))
    write_snapshot(node.storage, snapshot_meta(6, 1), b"s")
    node.storage.save(None, entries(5, 8, term=2))
    for s in (node.storage, node.restart()):
        assert (s.first_index(), s.last_index()) == (7, 8)
        assert s.entries(7, 9) == entries(7, 8, term=2)
