"""Crash-point injection: a power cut after every write, sync, rename, unlink and truncate.

A fixed workload (appends, an overwrite of the tail, snapshots that keep, discard and overtake the
log, restarts, segment rolls) runs once to count its file-system operations; then once per
operation k, with the simulated machine losing power right after operation k. Each crash is
recovered under four models of the unsynced bytes of every file (dropped, half kept, zeroed, all
kept), and the recovered state must be one the workload could have been in: everything
acknowledged (each ``save()``/``commit()`` that returned), plus possibly a prefix of the operation
that was cut. Nothing else: no lost acknowledgement, no resurrected or invented entry.
Unsynced saves, and rolls right after them, are test_storage_powerloss.py's; the regressions it
and issue 14 found are pinned here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from kvserver.storage import DiskStorage
from kvserver.storage.segments import parse_segment_name
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Entry, HardState, SnapshotMetadata
from raftcore.storage import Storage
from tests.storage.helpers import (
    State,
    entries,
    hard_state,
    snapshot_meta,
    state_of,
    write_snapshot,
)
from tests.storage.simfs import CRASH_MODES, CrashMode, SimFileSystem, SimulatedCrash

DIR = "/data"
VOTERS = (1, 2, 3)
SEGMENT_BYTES = 160


@dataclass(frozen=True)
class Save:
    hard_state: HardState | None
    batch: list[Entry]

    def apply(self, storage: Storage) -> None:
        storage.save(self.hard_state, self.batch)

    def outcomes(self, model: MemoryStorage) -> list[State]:
        """Before, after, or with only a prefix of the batch (and the old hard state)."""
        states = [state_of(model)]
        for cut in range(1, len(self.batch) + 1):
            partial = model.copy()
            partial.save(None, self.batch[:cut])
            states.append(state_of(partial))
        done = model.copy()
        self.apply(done)
        states.append(state_of(done))
        return states


@dataclass(frozen=True)
class Snapshot:
    meta: SnapshotMetadata
    data: bytes

    def apply(self, storage: Storage) -> None:
        write_snapshot(storage, self.meta, self.data)

    def outcomes(self, model: MemoryStorage) -> list[State]:
        """Before or after."""
        done = model.copy()
        self.apply(done)
        return [state_of(model), state_of(done)]


@dataclass(frozen=True)
class Restart:
    def outcomes(self, model: MemoryStorage) -> list[State]:
        """Unchanged."""
        return [state_of(model)]


Op = Save | Snapshot | Restart

WORKLOAD: list[Op] = [
    Save(hard_state(1, vote=1), entries(1, 3, term=1)),
    Save(None, entries(4, 4, term=1)),
    Save(hard_state(1, vote=1, commit=3), []),
    Save(hard_state(2, vote=2, commit=3), entries(5, 12, term=2)),
    Save(None, entries(8, 10, term=3)),
    Snapshot(snapshot_meta(6, 2), b"snapshot at 6;" * 20),
    Save(hard_state(3, vote=1, commit=7), entries(11, 13, term=3)),
    Restart(),
    Save(None, entries(12, 14, term=4)),
    Snapshot(snapshot_meta(20, 5), b"leader's snapshot beyond the log"),
    Save(hard_state(5, vote=2, commit=20), entries(21, 23, term=5)),
    Snapshot(snapshot_meta(22, 4), b"leader's snapshot contradicting the log"),
    Save(None, entries(23, 25, term=6)),
    Restart(),
    Save(hard_state(6, vote=3, commit=24), entries(26, 40, term=6)),
    Snapshot(snapshot_meta(30, 6), b""),
    Save(hard_state(7, vote=3, commit=30), entries(35, 36, term=7)),
]


def _open(fs: SimFileSystem) -> DiskStorage:
    return DiskStorage(DIR, voters=VOTERS, segment_bytes=SEGMENT_BYTES, fs=fs)


def _run(fs: SimFileSystem, on_op: Callable[[Op, MemoryStorage], None]) -> None:
    """Run the workload on ``fs``, mirroring every acknowledged operation in a model."""
    model = MemoryStorage(VOTERS)
    storage = _open(fs)
    for op in WORKLOAD:
        on_op(op, model)
        if isinstance(op, Restart):
            storage.close()
            storage = _open(fs)
        else:
            op.apply(storage)
            op.apply(model)
    storage.close()


def _segment_count(fs: SimFileSystem) -> int:
    return sum(parse_segment_name(name) is not None for name in fs.listdir(DIR))


def _count_operations() -> int:
    fs = SimFileSystem()
    _run(fs, lambda op, model: None)
    return fs.ops


TOTAL_OPERATIONS = _count_operations()


def test_the_workload_exercises_rolls_and_snapshots() -> None:
    fs = SimFileSystem()
    _run(fs, lambda op, model: None)
    expected = MemoryStorage(VOTERS)
    for op in WORKLOAD:
        if not isinstance(op, Restart):
            op.apply(expected)
    assert state_of(_open(fs.crash_image("drop"))) == state_of(expected)
    assert expected.last_index() == 36
    # One initial segment and four snapshots make five rebase segments; more means rolls happened.
    newest = max(parse_segment_name(name) or 0 for name in fs.listdir(DIR))
    assert newest > 7
    assert TOTAL_OPERATIONS > 100


@pytest.mark.parametrize("crash_after", range(1, TOTAL_OPERATIONS + 1))
def test_recovery_after_a_crash_holds_exactly_what_was_acknowledged(crash_after: int) -> None:
    fs = SimFileSystem()
    fs.crash_after = crash_after
    acceptable: list[State] = [state_of(MemoryStorage(VOTERS))]

    def before(op: Op, model: MemoryStorage) -> None:
        acceptable[:] = op.outcomes(model)

    with pytest.raises(SimulatedCrash):
        _run(fs, before)
    for mode in CRASH_MODES:
        image = fs.crash_image(mode)
        recovered = _open(image)
        state = state_of(recovered)
        assert state in acceptable, f"crash after op {crash_after}, mode {mode}: {state}"
        # The recovered directory keeps working: a new save survives another power cut.
        nxt = recovered.last_index() + 1
        recovered.save(hard_state(99), [Entry(index=nxt, term=99, data=b"after")])
        again = _open(image.crash_image("drop"))
        assert (again.last_index(), again.term(nxt)) == (nxt, 99)
        assert again.initial_state()[0].term == 99


@pytest.mark.parametrize("crash_after", range(1, TOTAL_OPERATIONS + 1, 3))
def test_a_crash_during_recovery_is_recovered_too(crash_after: int) -> None:
    """Recovery writes too (cuts torn tails, finishes snapshot commits): cut power there too."""
    fs = SimFileSystem()
    fs.crash_after = crash_after
    acceptable: list[State] = [state_of(MemoryStorage(VOTERS))]

    def before(op: Op, model: MemoryStorage) -> None:
        acceptable[:] = op.outcomes(model)

    with pytest.raises(SimulatedCrash):
        _run(fs, before)
    for mode in ("tear", "zeros"):
        image = fs.crash_image(mode)
        probe = image.crash_image("drop")
        _open(probe)
        for recovery_crash in range(1, probe.ops + 1):
            trial = image.crash_image("drop")
            trial.crash_after = recovery_crash
            with pytest.raises(SimulatedCrash):
                _open(trial)
            for second in ("drop", "keep"):
                state = state_of(_open(trial.crash_image(second)))  # type: ignore[arg-type]
                assert state in acceptable, (crash_after, mode, recovery_crash, second)


@pytest.mark.parametrize("separate_sync", [False, True], ids=["synced-save", "save-then-sync"])
@pytest.mark.parametrize("mode", CRASH_MODES)
def test_a_roll_after_a_commit_only_save_keeps_the_old_segment_whole(
    mode: CrashMode, separate_sync: bool
) -> None:
    """Issue 14, bug 2: entries + sync, a commit-only save (unsynced), one more entry whose save
    rolls the segment + sync, power cut. Everything is synced, so all of it must come back."""
    fs = SimFileSystem()
    storage = DiskStorage(DIR, voters=VOTERS, segment_bytes=520, fs=fs)
    storage.save(hard_state(1, vote=1), entries(1, 15, term=1, tag=b"x"))
    assert _segment_count(fs) == 1
    storage.save(hard_state(1, vote=1, commit=15), [], sync=False)
    assert _segment_count(fs) == 1  # this save filled the segment past the limit...
    storage.save(None, entries(16, 16, term=1), sync=not separate_sync)
    assert _segment_count(fs) == 2  # ...so this one rolled
    if separate_sync:
        storage.sync()
    acknowledged = state_of(storage)
    assert state_of(_open(fs.crash_image(mode))) == acknowledged


def test_a_synced_save_that_changes_nothing_still_syncs_the_saves_before_it() -> None:
    """The contract: the next synced save makes earlier unsynced ones durable, even if it has
    nothing of its own to write (found by test_storage_powerloss, seeds 4 and 8)."""
    fs = SimFileSystem()
    storage = _open(fs)
    storage.save(hard_state(1, vote=1), entries(1, 3, term=1))
    storage.save(hard_state(1, vote=1, commit=3), [], sync=False)
    storage.save(hard_state(1, vote=1, commit=3), [])
    assert state_of(_open(fs.crash_image("drop"))) == state_of(storage)
