"""The Raft log as the core sees it: the stable part in storage plus an unstable tail.

Theory of operation
-------------------
Entries the core has accepted but the runner has not yet persisted live in ``unstable``, a list
whose first entry has index ``offset``; everything below ``offset`` is read from storage. A
follower that learns of a conflict truncates by moving ``offset`` down (the next Ready's entries
then start at or below the storage's last index, and ``Storage.save`` truncates there). When a
leader's snapshot has been fully received but not yet persisted, ``pending_snapshot`` stands in
for storage's snapshot: the log below it is gone and storage is not consulted for it.

Three cursors move forward only: ``committed`` (known committed), ``applying`` (handed to the
runner in a Ready's ``committed_entries``) and ``applied`` (the runner said it applied them).
"""

from __future__ import annotations

from collections.abc import Sequence

from raftcore.errors import RaftError
from raftcore.raftpb_pb2 import Entry, SnapshotMetadata
from raftcore.storage import CompactedError, Storage, UnavailableError

__all__ = ["RaftLog"]


class RaftLog:
    """Stable entries (``storage``) + unstable tail + commit/apply cursors."""

    __slots__ = (
        "applied",
        "applying",
        "committed",
        "offset",
        "pending_snapshot",
        "storage",
        "unstable",
    )

    def __init__(self, storage: Storage, commit: int, applied: int) -> None:
        """Resume over ``storage`` at commit ``commit``; the application holds ``applied``.

        Raises ValueError if ``commit`` or ``applied`` lie outside what storage holds.
        """
        self.storage = storage
        self.unstable: list[Entry] = []
        self.offset = storage.last_index() + 1
        self.pending_snapshot: SnapshotMetadata | None = None
        first = storage.first_index()
        if commit > self.offset - 1:
            raise ValueError(f"hard state commit {commit} is past the last index {self.offset - 1}")
        self.committed = max(commit, first - 1)
        applied = max(applied, first - 1)
        if applied > self.committed:
            raise ValueError(f"applied {applied} is past the commit index {self.committed}")
        self.applied = self.applying = applied

    # -- reading --------------------------------------------------------------------------------

    def first_index(self) -> int:
        """Index of the first entry still held (just past the snapshot)."""
        if self.pending_snapshot is not None:
            return self.pending_snapshot.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        """Index of the last entry (the snapshot's index when the log is empty)."""
        # Invariant: ``offset - 1`` is the last index of the stable part (or pending snapshot).
        return self.offset + len(self.unstable) - 1

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; the snapshot's term at its index.

        Raises CompactedError below the snapshot, UnavailableError past the last index.
        """
        i = index - self.offset
        if i >= 0:
            unstable = self.unstable
            if i < len(unstable):
                return unstable[i].term
            raise UnavailableError(f"index {index} is past the last index {self.last_index()}")
        pending = self.pending_snapshot
        if pending is not None:
            if index == pending.index:
                return pending.term
            if index < pending.index:
                raise CompactedError(f"index {index} is below the snapshot at {pending.index}")
        return self.storage.term(index)

    def last_term(self) -> int:
        """Term of the last entry."""
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        """Whether the log holds an entry at ``index`` with ``term`` (False if unknown)."""
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft's election restriction (section 5.4.1): is a log ending at (``last_index``,
        ``last_term``) at least as up to date as this one?"""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``lo .. hi - 1``; with ``max_bytes``, cut where their size would pass it
        (always at least one entry). Raises CompactedError if ``lo`` was compacted."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(f"entries from {lo} were compacted")
        offset = self.offset
        if lo >= offset:
            ents = self.unstable[lo - offset : hi - offset]
            return ents if max_bytes is None else _limit(ents, max_bytes)
        stored = self.storage.entries(lo, min(hi, offset), max_bytes)
        if hi <= offset or len(stored) < min(hi, offset) - lo:
            return stored
        tail = self.unstable[: hi - offset]
        if max_bytes is not None:
            budget = max_bytes - sum(e.ByteSize() for e in stored)
            kept = []
            for e in tail:
                budget -= e.ByteSize()
                if budget < 0:
                    break
                kept.append(e)
            tail = kept
        return stored + tail

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term`` (fast log back-up, 5.3).

        Stops at the first compacted index: everything below it is committed and matches.
        """
        index = min(index, self.last_index())
        while index > 0:
            try:
                if self.term(index) <= term:
                    return index
            except CompactedError:
                return index
            index -= 1
        return 0

    def next_committed(self) -> list[Entry]:
        """Committed entries not yet handed to the runner; marks them as handed out."""
        lo, hi = self.applying + 1, self.committed + 1
        if lo >= hi:
            return []
        self.applying = self.committed
        return self.slice(lo, hi)

    # -- changing -------------------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Append consecutive ``entries``, first truncating any tail at or after the first one."""
        first = entries[0].index
        unstable = self.unstable
        end = self.offset + len(unstable)
        if first == end:
            unstable.extend(entries)
        elif first <= self.offset:
            if first <= self.committed:
                raise RaftError(f"refusing to overwrite committed entry {first}")
            self.offset = first
            self.unstable = list(entries)
        elif first < end:
            del unstable[first - self.offset :]
            unstable.extend(entries)
        else:
            raise RaftError(f"append at {first} leaves a gap after {end - 1}")

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: Sequence[Entry]
    ) -> int | None:
        """The follower's consistency check and append (section 5.3).

        If the entry at ``prev_index`` has ``prev_term``, drop any conflicting suffix, append
        what is new, raise the commit index to min(``commit``, last new index) and return that
        last new index. Otherwise change nothing and return None.
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        if entries:
            last = self.last_index()
            if entries[0].index > last:
                # The common streaming case: nothing overlaps, so take the entries as they are
                # (slicing a protobuf repeated field would build a throwaway list first).
                self.append(entries)
            else:
                self._append_new(entries, last)
        self.commit_to(min(commit, last_new))
        return last_new

    def _append_new(self, entries: Sequence[Entry], last: int) -> None:
        """Append what ``entries`` add past the part this log already holds, truncating at the
        first conflicting entry (section 5.3)."""
        for k, e in enumerate(entries):
            if e.index > last or not self.match_term(e.index, e.term):
                self.append(entries[k:])
                return

    def commit_to(self, index: int) -> None:
        """Raise the commit index to ``index`` (never lowers it)."""
        if index > self.committed:
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to ``index`` if its entry is from ``term`` (only current-term entries are
        committed by counting replicas, section 5.4.2). True if the commit index moved."""
        if index > self.committed and self.term(index) == term:
            self.committed = index
            return True
        return False

    def stable_to(self, index: int, term: int) -> None:
        """The runner persisted entries up to ``index`` (whose term was ``term``)."""
        i = index - self.offset
        unstable = self.unstable
        if 0 <= i < len(unstable) and unstable[i].term == term:
            if i + 1 == len(unstable):
                self.unstable = []
            else:
                del unstable[: i + 1]
            self.offset = index + 1

    def restore(self, meta: SnapshotMetadata) -> None:
        """Replace the log prefix by a snapshot received from the leader.

        Entries after the snapshot survive only if the log agrees with it at its index (the rule
        ``SnapshotWriter.commit`` applies to storage); they are re-queued as unstable so storage
        ends up holding exactly this view. The application restores from the snapshot, so the
        apply cursors jump to its index.
        """
        last = self.last_index()
        suffix: list[Entry] = []
        if self.match_term(meta.index, meta.term) and meta.index < last:
            suffix = self.slice(meta.index + 1, last + 1)
        self.pending_snapshot = meta
        self.unstable = suffix
        self.offset = meta.index + 1
        self.committed = max(self.committed, meta.index)
        self.applying = max(self.applying, meta.index)

    def stable_snapshot(self, meta: SnapshotMetadata) -> None:
        """The runner installed the snapshot ``meta``: storage answers for it from now on."""
        pending = self.pending_snapshot
        if pending is not None and pending.index == meta.index and pending.term == meta.term:
            self.pending_snapshot = None
        self.applied = max(self.applied, meta.index)


def _limit(entries: list[Entry], max_bytes: int) -> list[Entry]:
    if sum(map(Entry.ByteSize, entries)) <= max_bytes:
        return entries  # the usual case, summed without a Python-level loop
    total = 0
    for n, e in enumerate(entries):
        total += e.ByteSize()
        if total > max_bytes and n > 0:
            return entries[:n]
    return entries
