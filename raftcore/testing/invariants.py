"""Raft's safety properties, checked incrementally after every step of a simulated cluster.

Theory of operation
-------------------
The checker mirrors each node's *persisted* log as a list of chain ids. A chain id names an entry
together with everything before it: ``intern(prev_id, term, type, data)`` hands out a fresh small
integer the first time it sees a key and the same one afterwards (the root, index 0, is id 0). Two
logs then agree on a whole prefix exactly when they hold the same chain id at its last index, so
the properties of Raft (Figure 3 of the paper) reduce to dictionary look-ups:

* election safety: at most one node becomes leader in each term;
* log matching: every (index, term) that any node ever persisted maps to one chain id;
* leader completeness: a leader's log holds the highest committed chain id, checked when it is
  elected and again whenever the commit point moves while it leads;
* state machine safety: no two nodes apply different data at one index, each node applies in
  order without gaps, and a snapshot restores only what was applied elsewhere;
* durability: an entry is applied only once a majority holds it durably (its persisted log, or a
  snapshot, covers it): what a runner reports persisted is what survives a crash;
* the persisted commit index never goes back, is never above the persisted log, and a node votes
  for at most one candidate per term, even across crashes;
* linearizable reads: a ReadIndex answer is at or above every commit index any node had
  persisted when the read was requested (so it reflects every write acknowledged before it).

Everything is keyed by integers, tuples and bytes in dicts (whose iteration order is insertion
order), so a run is deterministic. A violation raises :class:`InvariantViolation`, whose message
carries the seed and the virtual time so the run can be replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from raftcore.raftpb_pb2 import Entry, HardState, SnapshotMetadata

__all__ = ["InvariantChecker", "InvariantViolation", "SimulationFailure"]


class SimulationFailure(AssertionError):
    """A simulated run failed; the message names the seed that replays it."""

    def __init__(self, seed: int, now: int, message: str) -> None:
        super().__init__(f"[seed {seed}, t={now / 1e6:.6f}s virtual] {message}")
        self.seed = seed
        self.now = now


class InvariantViolation(SimulationFailure):
    """One of Raft's safety properties does not hold."""


class _LogMirror:
    """Chain ids of one node's persisted log: ``ids[k]`` is the id at index ``base + k``."""

    __slots__ = ("base", "ids")

    def __init__(self, base: int, base_id: int) -> None:
        self.base = base
        self.ids = [base_id]

    @property
    def last_index(self) -> int:
        return self.base + len(self.ids) - 1

    def id_at(self, index: int) -> int | None:
        k = index - self.base
        if 0 <= k < len(self.ids):
            return self.ids[k]
        return None


class InvariantChecker:
    """Observes every node of one cluster; raises :class:`InvariantViolation` on the first breach.

    The cluster calls the ``on_*`` hooks in the order things happen to each node: after a
    Ready's persistence, after each apply, after a snapshot restore, on role changes, crashes
    and restarts. ``clock`` gives the virtual time for error messages.
    """

    def __init__(self, seed: int, clock: Callable[[], int]) -> None:
        self.seed = seed
        self._clock = clock
        self._chain: dict[tuple[int, int, int, bytes], int] = {}
        self._chain_term: list[int] = [0]
        self._at: dict[tuple[int, int], int] = {(0, 0): 0}
        self._leader_of_term: dict[int, int] = {}
        self._leading: dict[int, int] = {}  # node -> term it currently leads
        self._max_commit = 0
        self._max_commit_id = 0
        self._committed: dict[int, int] = {0: 0}  # commit index -> chain id there
        self._applied_data: dict[int, bytes] = {}
        self._applied_index: dict[int, int] = {}
        self._durable_through = 0  # entries up to here were seen on a majority's disks
        self._logs: dict[int, _LogMirror] = {}
        self._hard: dict[int, HardState] = {}
        # The commit index a crash must keep: raised by synced saves and installed snapshots.
        self._durable_commit: dict[int, int] = {}
        self._read_floor: dict[bytes, int] = {}  # pending read context -> commit when requested
        self._votes: dict[tuple[int, int], int] = {}  # (node, term) -> vote, across restarts
        self.checks = 0
        """How many hook calls ran (each one checks the properties it can affect)."""

    def fail(self, message: str) -> InvariantViolation:
        """Build the violation to raise, stamped with the seed and the virtual time."""
        return InvariantViolation(self.seed, self._clock(), message)

    # -- chain ids ------------------------------------------------------------------------------

    def _intern(self, prev: int, entry: Entry) -> int:
        key = (prev, entry.term, entry.type, entry.data)
        cid = self._chain.get(key)
        if cid is None:
            cid = len(self._chain_term)
            self._chain[key] = cid
            self._chain_term.append(entry.term)
        return cid

    def _known(self, node: int, index: int, term: int) -> int:
        cid = self._at.get((index, term))
        if cid is None:
            raise self.fail(f"node {node} holds a snapshot at ({index}, term {term}) no log had")
        return cid

    def _append(self, node: int, mirror: _LogMirror, entries: Iterable[Entry]) -> None:
        ids = mirror.ids
        for entry in entries:
            index = entry.index
            if index <= mirror.base:
                continue
            k = index - mirror.base
            if k > len(ids):
                raise self.fail(f"node {node} persisted index {index} after {mirror.last_index}")
            del ids[k:]
            cid = self._intern(ids[-1], entry)
            seen = self._at.setdefault((index, entry.term), cid)
            if seen != cid:
                raise self.fail(
                    f"log matching: node {node} persisted ({index}, term {entry.term}) with a "
                    "different entry or prefix than another node"
                )
            ids.append(cid)

    def _install(self, node: int, mirror: _LogMirror, meta: SnapshotMetadata) -> None:
        if meta.index <= mirror.base:
            return
        cid = self._known(node, meta.index, meta.term)
        k = meta.index - mirror.base
        if k < len(mirror.ids) and mirror.ids[k] == cid:
            del mirror.ids[:k]
        else:
            mirror.ids = [cid]
        mirror.base = meta.index

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(
        self, node: int, meta: SnapshotMetadata, hard_state: HardState, entries: Sequence[Entry]
    ) -> None:
        """A node (re)started from persisted state: snapshot ``meta``, ``hard_state``, log."""
        self.checks += 1
        mirror = _LogMirror(meta.index, self._known(node, meta.index, meta.term))
        self._append(node, mirror, entries)
        self._logs[node] = mirror
        durable = self._durable_commit.get(node, 0)
        if hard_state.commit < durable:
            raise self.fail(f"node {node} restarted with commit {hard_state.commit} < {durable}")
        self._durable_commit[node] = max(hard_state.commit, meta.index)
        saved = HardState()
        saved.CopyFrom(hard_state)
        self._hard[node] = saved
        self._applied_index[node] = meta.index
        self._leading.pop(node, None)

    def on_crash(self, node: int) -> None:
        """A node crashed: it leads nothing any more."""
        self._leading.pop(node, None)

    def on_persist(
        self,
        node: int,
        installed: SnapshotMetadata | None,
        entries: Sequence[Entry],
        hard_state: HardState | None,
        synced: bool = True,
    ) -> None:
        """A Ready was persisted: an installed snapshot, then entries, then the hard state
        (``synced`` False: saved without a sync, so a crash may undo its commit index)."""
        self.checks += 1
        mirror = self._logs[node]
        if installed is not None:
            self._install(node, mirror, installed)
            durable = max(self._durable_commit[node], installed.index)
            self._durable_commit[node] = durable
        if entries:
            self._append(node, mirror, entries)
        if hard_state is not None:
            self._check_hard_state(node, mirror, hard_state)
        if synced:
            self._durable_commit[node] = max(self._durable_commit[node], self._hard[node].commit)

    def on_compact(self, node: int, meta: SnapshotMetadata) -> None:
        """The application committed its own snapshot at ``meta`` (the log prefix went away)."""
        self.checks += 1
        mirror = self._logs[node]
        if meta.index > mirror.last_index:
            raise self.fail(f"node {node} compacted at {meta.index} beyond its log")
        self._install(node, mirror, meta)
        self._durable_commit[node] = max(self._durable_commit[node], meta.index)

    def _check_hard_state(self, node: int, mirror: _LogMirror, hs: HardState) -> None:
        previous = self._hard[node]
        if hs.term < previous.term:
            raise self.fail(f"node {node} term went back from {previous.term} to {hs.term}")
        if hs.vote:
            vote = self._votes.setdefault((node, hs.term), hs.vote)
            if vote != hs.vote:
                raise self.fail(f"node {node} voted twice in term {hs.term}: {vote} then {hs.vote}")
        if hs.commit < previous.commit:
            raise self.fail(f"node {node} commit went back from {previous.commit} to {hs.commit}")
        if hs.commit > mirror.last_index:
            raise self.fail(
                f"node {node} persisted commit {hs.commit} beyond its log ({mirror.last_index})"
            )
        previous.CopyFrom(hs)
        cid = mirror.id_at(hs.commit)
        if cid is None:  # at or below a snapshot that moved past it: nothing new to learn
            return
        seen = self._committed.setdefault(hs.commit, cid)
        if seen != cid:
            raise self.fail(
                f"state machine safety: node {node} committed another entry at "
                f"{hs.commit} than another node"
            )
        if hs.commit > self._max_commit:
            self._max_commit = hs.commit
            self._max_commit_id = cid
            committed_term = self._chain_term[cid]
            for leader, term in self._leading.items():
                if term > committed_term:
                    self._check_complete(leader, term)

    def _check_complete(self, node: int, term: int) -> None:
        index = self._max_commit
        mirror = self._logs[node]
        if index < mirror.base:
            return  # a snapshot covers it; snapshots only hold committed entries
        if mirror.id_at(index) != self._max_commit_id:
            raise self.fail(
                f"leader completeness: node {node}, leader of term {term}, lacks the entry "
                f"committed at {index}"
            )

    def on_role(self, node: int, is_leader: bool, term: int) -> None:
        """The node's role changed (called after that Ready was persisted)."""
        self.checks += 1
        if not is_leader:
            self._leading.pop(node, None)
            return
        holder = self._leader_of_term.setdefault(term, node)
        if holder != node:
            raise self.fail(f"election safety: nodes {holder} and {node} both lead term {term}")
        self._leading[node] = term
        if self._max_commit and self._chain_term[self._max_commit_id] <= term:
            self._check_complete(node, term)

    def on_apply(self, node: int, entry: Entry) -> None:
        """The node's application applied ``entry``."""
        expected = self._applied_index[node] + 1
        if entry.index != expected:
            raise self.fail(f"node {node} applied index {entry.index}, expected {expected}")
        self._applied_index[node] = entry.index
        seen = self._applied_data.setdefault(entry.index, entry.data)
        if seen != entry.data:
            raise self.fail(
                f"state machine safety: node {node} applied {entry.data!r} at {entry.index}, "
                f"another node applied {seen!r}"
            )
        if entry.index > self._durable_through:
            self._check_durable_majority(node, entry)

    def _check_durable_majority(self, node: int, entry: Entry) -> None:
        """An applied entry must be committed: held durably (persisted, or covered by a
        snapshot) by a majority. A chain id names the prefix too, so the prefix is held."""
        cid = self._at.get((entry.index, entry.term))
        holders = sum(
            1
            for mirror in self._logs.values()
            if mirror.base >= entry.index or (cid is not None and mirror.id_at(entry.index) == cid)
        )
        if 2 * holders <= len(self._logs):
            raise self.fail(
                f"durability: node {node} applied index {entry.index} (term {entry.term}), "
                f"which only {holders} of {len(self._logs)} nodes hold durably"
            )
        self._durable_through = entry.index

    def on_restore(self, node: int, index: int, applied: Sequence[bytes]) -> None:
        """The node's application restored a snapshot holding ``applied`` (indexes 1..index)."""
        self.checks += 1
        if index < self._applied_index[node]:
            raise self.fail(f"node {node} restored snapshot {index} behind applied state")
        for i, data in enumerate(applied, start=1):
            seen = self._applied_data.setdefault(i, data)
            if seen != data:
                raise self.fail(
                    f"state machine safety: node {node}'s snapshot holds {data!r} at {i}, "
                    f"another node applied {seen!r}"
                )
        self._applied_index[node] = index

    def applied(self, index: int) -> bytes | None:
        """The data any node applied at ``index`` (None if none did yet)."""
        return self._applied_data.get(index)

    def on_read_request(self, context: bytes) -> None:
        """A read tagged ``context`` was requested now (contexts are unique)."""
        if context in self._read_floor:
            raise self.fail(f"read context {context!r} reused")
        self._read_floor[context] = self._max_commit

    def on_read_state(self, node: int, index: int, context: bytes) -> None:
        """Node ``node`` declared ``index`` a safe read point for ``context``."""
        self.checks += 1
        floor = self._read_floor.pop(context, None)
        if floor is None:
            raise self.fail(f"node {node} answered read {context!r} that nobody asked or twice")
        if index < floor:
            raise self.fail(
                f"stale read: node {node} gave read index {index} for {context!r}, but {floor} "
                "was already committed when the read was requested"
            )
