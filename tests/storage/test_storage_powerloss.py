"""Power loss at every write and sync of generated sequences: exactly the durable state comes back.

Each sequence (seeded, so a failure replays) mixes synced saves, unsynced saves with entries (the
node's write-then-``sync()``), commit-only unsynced saves, ``sync()`` calls, snapshots that compact
the log or install a leader's snapshot, clean restarts, and, with a small segment limit, rolls
right after unsynced saves. It runs once to count its file-system operations, then once per
operation k with the power cut right after operation k. Every crash image is opened: every
combination of none, half, all or zeros for each file's unsynced bytes, and every prefix of the
directory operations since the last directory sync.

What the contract says survives is tracked alongside: the state at the last *durability point* (a
synced save, a ``sync()``, a committed snapshot, an open, which syncs) plus the records written
since, in order. A crash image must open (never a torn older segment, never a missing file) and
hold that durable state plus a prefix of the later records; a crash inside a snapshot commit may
also leave that snapshot installed on such a state. Nothing older, nothing invented, and a snapshot
whose commit returned is never lost.

Default: ``RAFTKV_POWERLOSS_SEQUENCES`` (12) sequences of ``RAFTKV_POWERLOSS_OPS`` (24) steps;
``RAFTKV_POWERLOSS_FIRST_SEED`` moves the seed range. The README's test section has the command
for a longer campaign.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from kvserver.storage import DiskStorage
from kvserver.storage.segments import parse_segment_name
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Entry, HardState, SnapshotMetadata
from tests.storage.helpers import State, snapshot_meta, state_of, write_snapshot
from tests.storage.simfs import CRASH_MODES, SimFileSystem, SimulatedCrash

DIR = "/data"
VOTERS = (1, 2, 3)
SEGMENT_BYTES = 200
SEQUENCES = int(os.environ.get("RAFTKV_POWERLOSS_SEQUENCES", "12"))
OPS = int(os.environ.get("RAFTKV_POWERLOSS_OPS", "24"))
FIRST_SEED = int(os.environ.get("RAFTKV_POWERLOSS_FIRST_SEED", "0"))


@dataclass(frozen=True)
class Save:
    hard_state: HardState | None
    batch: tuple[Entry, ...]
    sync: bool


@dataclass(frozen=True)
class Sync:
    pass


@dataclass(frozen=True)
class Snapshot:
    meta: SnapshotMetadata
    data: bytes


@dataclass(frozen=True)
class Restart:
    pass


Op = Save | Sync | Snapshot | Restart
Record = Entry | HardState


def _clone(model: MemoryStorage) -> MemoryStorage:
    model.sync()  # MemoryStorage.copy keeps the synced commit only; here every record counts
    return model.copy()


def _apply(model: MemoryStorage, records: list[Record]) -> MemoryStorage:
    out = _clone(model)
    for record in records:
        if isinstance(record, Entry):
            out.save(None, [record])
        else:
            out.save(record, [])
    return out


def _install(model: MemoryStorage, snap: Snapshot) -> MemoryStorage:
    out = _clone(model)
    write_snapshot(out, snap.meta, snap.data)
    return out


def _records(op: Save) -> list[Record]:
    return [*op.batch, *([op.hard_state] if op.hard_state is not None else [])]


def generate(seed: int, length: int = OPS) -> list[Op]:
    """A random valid sequence: terms and commit indexes never go back, appends leave no gap."""
    rng = random.Random(seed)
    live = MemoryStorage(VOTERS)
    term, ops = 1, []
    for _ in range(length):
        hs = live.initial_state()[0]
        last, first = live.last_index(), live.first_index()
        kind = rng.choices(
            ["save", "unsynced", "commit", "same", "sync", "compact", "install", "restart"],
            weights=[25, 20, 20, 3, 10, 7, 5, 5],
        )[0]
        op: Op
        if kind in ("save", "unsynced"):
            term += rng.random() < 0.15
            # A conflicting tail may be overwritten, a committed entry never.
            start = rng.randint(max(first, last - 2, hs.commit + 1), last + 1)
            size = rng.randint(0, 30)
            batch = tuple(
                Entry(index=i, term=term, data=b"%d.%d:" % (seed, i) + b"d" * size)
                for i in range(start, start + rng.randint(1, 5))
            )
            new_hs = HardState(term=term, vote=rng.choice([0, 1, 2]), commit=hs.commit)
            op = Save(new_hs if rng.random() < 0.6 else None, batch, kind == "save")
        elif kind == "commit":
            commit = rng.randint(hs.commit, max(hs.commit, last))
            op = Save(HardState(term=hs.term, vote=hs.vote, commit=commit), (), False)
        elif kind == "same":  # a synced save that changes nothing must still cover earlier ones
            op = Save(hs, (), True)
        elif kind == "sync":
            op = Sync()
        elif kind == "compact" and hs.commit >= first:
            index = rng.randint(first, hs.commit)
            data = b"compact %d;" % index * rng.randint(0, 12)
            op = Snapshot(snapshot_meta(index, live.term(index)), data)
        elif kind == "install":
            term += 1
            # A leader's snapshot may contradict the tail, never a committed entry.
            index = rng.randint(max(first, last - 2, hs.commit + 1), last + 4)
            op = Snapshot(snapshot_meta(index, term), b"leader's %d;" % index * rng.randint(0, 12))
        else:
            op = Restart()
        _run_op(live, op)
        ops.append(op)
    return ops


def _run_op(storage: MemoryStorage | DiskStorage, op: Op) -> None:
    if isinstance(op, Save):
        storage.save(op.hard_state, list(op.batch), sync=op.sync)
    elif isinstance(op, Sync):
        storage.sync()
    elif isinstance(op, Snapshot):
        write_snapshot(storage, op.meta, op.data)


@dataclass
class Durability:
    """What survives a power cut now: ``durable`` plus any prefix of ``pending``."""

    durable: MemoryStorage = field(default_factory=lambda: MemoryStorage(VOTERS))
    pending: list[Record] = field(default_factory=list)

    def settle(self) -> None:
        self.durable = _apply(self.durable, self.pending)
        self.pending = []

    def states(self, extra: Sequence[Record] = ()) -> Iterator[MemoryStorage]:
        records = self.pending + list(extra)
        for cut in range(len(records) + 1):
            yield _apply(self.durable, records[:cut])

    def acceptable(self, op: Op | None) -> set[State]:
        """States a power cut during ``op`` (None: between operations) may leave."""
        if isinstance(op, Save):
            return {state_of(s) for s in self.states(_records(op))}
        if isinstance(op, Snapshot):
            prefixes = list(self.states())
            return {state_of(s) for s in prefixes} | {state_of(_install(s, op)) for s in prefixes}
        return {state_of(s) for s in self.states()}

    def done(self, op: Op, live: MemoryStorage, *, installed: bool) -> None:
        """Account for ``op``, which returned; ``live`` is the state it left; ``installed``:
        whether a Snapshot op was newer than the one in force (else it changed nothing)."""
        if isinstance(op, Save):
            self.pending += _records(op)
            if op.sync:
                self.settle()
        elif isinstance(op, Snapshot):
            if installed:
                self.durable, self.pending = _clone(live), []  # the rebase segment holds it all
        else:
            self.settle()  # sync(), or an open, which syncs the active segment


def _open(fs: SimFileSystem) -> DiskStorage:
    return DiskStorage(DIR, voters=VOTERS, segment_bytes=SEGMENT_BYTES, fs=fs)


def _newest_segment(fs: SimFileSystem) -> int:
    return max(parse_segment_name(name) or 0 for name in fs.listdir(DIR))


@dataclass
class Run:
    """One run of a sequence: its durability account, the op in progress, what it exercised."""

    track: Durability = field(default_factory=Durability)
    current: Op | None = None
    rolls_after_unsynced: int = 0


def run(ops: list[Op], fs: SimFileSystem, state: Run) -> None:
    """Run ``ops`` on ``fs``, accounting in ``state``, until done or a SimulatedCrash."""
    live = MemoryStorage(VOTERS)
    storage = _open(fs)
    for op in ops:
        state.current = op
        unsynced, newest = bool(state.track.pending), _newest_segment(fs)
        base = live.snapshot_metadata().index
        if isinstance(op, Restart):
            storage.close()
            storage = _open(fs)
        else:
            _run_op(storage, op)
            _run_op(live, op)
        if isinstance(op, Save) and unsynced and _newest_segment(fs) > newest:
            state.rolls_after_unsynced += 1
        installed = isinstance(op, Snapshot) and op.meta.index > base
        state.track.done(op, live, installed=installed)
        state.current = None
    storage.close()


def crash_images(fs: SimFileSystem) -> Iterator[tuple[str, SimFileSystem]]:
    """Every power-cut image of ``fs`` the model allows, named for the failure message."""
    unsynced = sorted(
        path
        for path, inode in {**fs.durable, **fs.files}.items()
        if bytes(inode.data) != inode.synced
    )
    for kept in range(len(fs.pending_names) + 1):
        for modes in itertools.product(CRASH_MODES, repeat=len(unsynced)):
            per_file = dict(zip(unsynced, modes, strict=True))
            yield (
                f"names_kept={kept} {per_file}",
                fs.crash_image(per_file=per_file, names_kept=kept),
            )


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + SEQUENCES))
def test_power_loss_at_every_point_of_a_generated_sequence(seed: int) -> None:
    ops = generate(seed)
    total = SimFileSystem()
    run(ops, total, Run())
    for crash_after in range(1, total.ops + 1):
        fs = SimFileSystem()
        fs.crash_after = crash_after
        state = Run()
        with pytest.raises(SimulatedCrash):
            run(ops, fs, state)
        acceptable = state.track.acceptable(state.current)
        for name, image in crash_images(fs):
            where = f"seed {seed}, crash after op {crash_after} during {state.current}, {name}"
            recovered = _open(image)
            assert state_of(recovered) in acceptable, where
            # The recovered directory works: a synced save survives the next power cut.
            nxt = recovered.last_index() + 1
            recovered.save(HardState(term=99), [Entry(index=nxt, term=99, data=b"after")])
            recovered.close()
            again = _open(image.crash_image("drop"))
            assert (again.last_index(), again.term(nxt)) == (nxt, 99), where


def test_the_sequences_exercise_every_kind_of_step() -> None:
    """The default seeds roll after unsynced saves, compact, install, restart, and end intact."""
    rolls = kinds = 0
    seen: set[str] = set()
    for seed in range(FIRST_SEED, FIRST_SEED + SEQUENCES):
        ops = generate(seed)
        fs = SimFileSystem()
        state = Run()
        run(ops, fs, state)
        rolls += state.rolls_after_unsynced
        for op in ops:
            seen.add(type(op).__name__ + ("-synced" if isinstance(op, Save) and op.sync else ""))
        # With no crash, a power cut after the last op keeps the durable account (or more).
        final = _open(fs.crash_image("drop"))
        assert state_of(final) in state.track.acceptable(None), seed
        kinds += 1
    assert seen >= {"Save", "Save-synced", "Sync", "Snapshot", "Restart"}
    assert rolls >= 5, rolls
    assert kinds == SEQUENCES


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + max(1, SEQUENCES // 3)))
def test_power_loss_during_the_recovery_of_a_power_loss(seed: int) -> None:
    """Recovery writes too (cuts torn tails, finishes snapshot commits, removes leftovers, syncs):
    cut the power at each of its operations, for every fifth crash point of a sequence."""
    ops = generate(seed)
    total = SimFileSystem()
    run(ops, total, Run())
    for crash_after in range(1, total.ops + 1, 5):
        fs = SimFileSystem()
        fs.crash_after = crash_after
        state = Run()
        with pytest.raises(SimulatedCrash):
            run(ops, fs, state)
        acceptable = state.track.acceptable(state.current)
        for mode in ("tear", "zeros"):
            image = fs.crash_image(mode, names_kept=len(fs.pending_names))
            probe = image.crash_image("keep")
            _open(probe).close()
            for recovery_crash in range(1, probe.ops + 1):
                trial = image.crash_image("keep")
                trial.crash_after = recovery_crash
                with pytest.raises(SimulatedCrash):
                    _open(trial)
                for name, second in crash_images(trial):
                    where = (
                        f"seed {seed}, crash {crash_after}/{mode}, recovery crash {recovery_crash}"
                    )
                    assert state_of(_open(second)) in acceptable, f"{where}, {name}"
