"""Raft's safety properties, checked incrementally after every step of a simulated cluster.

Theory of operation
-------------------
The checker mirrors each node's *persisted* log as a list of chain ids. A chain id names an entry
together with everything before it: ``intern(prev_id, term, type, data)`` hands out a fresh small
integer the first time it sees a key and the same one afterwards (the root, index 0, is id 0). Two
logs then agree on a whole prefix exactly when they hold the same chain id at its last index, so
the properties of Raft (Figure 3 of the paper) reduce to dictionary look-ups. Each chain id also
carries the configuration in force once its prefix is in a log (thesis 4.1: the last
ENTRY_CONF_CHANGE's, else the cluster's birth configuration), read from the entries themselves,
never from a node, so it is the oracle the nodes' configurations are held against:

* election safety: at most one node becomes leader in each term; a node campaigns (is candidate
  or pre-candidate, or asks for votes) and becomes leader only as a voter of the configuration
  its log holds (or, while the change that removed it is uncommitted, of the one before, thesis
  4.2.2), so a learner or a node whose removal committed never does; and a leader was
  voted for by a majority of the voters of that configuration (learners' votes never count);
* log matching: every (index, term) that any node ever persisted maps to one chain id;
* leader completeness: a leader's log holds the highest committed chain id, checked when it is
  elected and again whenever the commit point moves while it leads;
* state machine safety: no two nodes apply different data at one index, each node applies in
  order without gaps, and a snapshot restores only what was applied elsewhere;
* durability: an entry is applied only once a majority of the voters of a configuration that
  may have committed it holds it durably (its persisted log, or a snapshot, covers it), and
  what a runner reports persisted is what survives a crash: a restarted node's log holds all it
  had persisted. With single-server changes the leader that commits index i counts the voters
  of the configuration at i or, if its log holds one, of the first change after i (at most one
  change is uncommitted then), so those two are allowed;
* the persisted commit index never goes back, is never above the persisted log, and a node votes
  for at most one candidate per term, even across crashes;
* membership: a leader's log holds at most one conf entry beyond its commit index (thesis 4.1);
  a snapshot carries the configuration at its index; and a node's own configuration (the one in
  force, and the one at its applied index) is the oracle's, so all nodes that applied index i
  agree on the configuration at i (:meth:`InvariantChecker.on_configuration`);
* linearizable reads: a ReadIndex answer is at or above every commit index any node had
  persisted when the read was requested (so it reflects every write acknowledged before it).

Everything is keyed by integers, tuples and bytes in dicts (whose iteration order is insertion
order), so a run is deterministic. A violation raises :class:`InvariantViolation`, whose message
carries the seed and the virtual time so the run can be replayed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence

from raftcore.membership import Membership, conf_change_of
from raftcore.raftpb_pb2 import ENTRY_CONF_CHANGE, Entry, HardState, SnapshotMetadata
from raftcore.ready import Role

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
    """Chain ids of one node's persisted log: ``ids[k]`` is the id at index ``base + k``;
    ``confs`` the indexes above ``base`` that hold conf entries, in order."""

    __slots__ = ("base", "confs", "ids")

    def __init__(self, base: int, base_id: int) -> None:
        self.base = base
        self.ids = [base_id]
        self.confs: list[int] = []

    @property
    def last_index(self) -> int:
        return self.base + len(self.ids) - 1

    def id_at(self, index: int) -> int | None:
        k = index - self.base
        if 0 <= k < len(self.ids):
            return self.ids[k]
        return None


def _voters_hold(voters: Sequence[int], holders: set[int]) -> bool:
    """Whether ``holders`` include a majority of ``voters``."""
    return 2 * sum(1 for v in voters if v in holders) > len(voters)


class InvariantChecker:
    """Observes every node of one cluster; raises :class:`InvariantViolation` on the first breach.

    The cluster calls the ``on_*`` hooks in the order things happen to each node: after a
    Ready's persistence, after each apply, after a snapshot restore, on role changes, crashes
    and restarts. ``clock`` gives the virtual time for error messages; ``voters`` is the
    cluster's birth configuration (what the root of every log holds).
    """

    def __init__(self, seed: int, clock: Callable[[], int], *, voters: Sequence[int]) -> None:
        self.seed = seed
        self._clock = clock
        self._chain: dict[tuple[int, int, int, bytes], int] = {}
        self._chain_term: list[int] = [0]
        # chain id -> configuration in force
        self._chain_conf: list[Membership] = [Membership.birth(voters)]
        self._at: dict[tuple[int, int], int] = {(0, 0): 0}
        self._leader_of_term: dict[int, int] = {}
        self._leading: dict[int, int] = {}  # node -> term it currently leads
        self._max_commit = 0
        self._max_commit_id = 0
        self._committed: dict[int, int] = {0: 0}  # commit index -> chain id there
        self._applied_data: dict[int, bytes] = {}  # index -> command (b"" for a conf entry)
        self._applied_confs: dict[int, bytes] = {}  # index -> conf change applied there
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
            change = conf_change_of(entry)
            conf = self._chain_conf[prev] if change is None else Membership.of(change.result)
            self._chain_conf.append(conf)
        return cid

    def _known(self, node: int, index: int, term: int) -> int:
        cid = self._at.get((index, term))
        if cid is None:
            raise self.fail(f"node {node} holds a snapshot at ({index}, term {term}) no log had")
        return cid

    def _append(self, node: int, mirror: _LogMirror, entries: Iterable[Entry]) -> None:
        ids = mirror.ids
        confs = mirror.confs
        for entry in entries:
            index = entry.index
            if index <= mirror.base:
                continue
            k = index - mirror.base
            if k > len(ids):
                raise self.fail(f"node {node} persisted index {index} after {mirror.last_index}")
            if k < len(ids):
                del ids[k:]
                while confs and confs[-1] >= index:
                    confs.pop()
            cid = self._intern(ids[-1], entry)
            seen = self._at.setdefault((index, entry.term), cid)
            if seen != cid:
                raise self.fail(
                    f"log matching: node {node} persisted ({index}, term {entry.term}) with a "
                    "different entry or prefix than another node"
                )
            ids.append(cid)
            if entry.type == ENTRY_CONF_CHANGE:
                confs.append(index)

    def _install(self, node: int, mirror: _LogMirror, meta: SnapshotMetadata) -> None:
        if meta.index <= mirror.base:
            return
        cid = self._known(node, meta.index, meta.term)
        self._check_snapshot_conf(node, cid, meta)
        k = meta.index - mirror.base
        if k < len(mirror.ids) and mirror.ids[k] == cid:
            del mirror.ids[:k]
            mirror.confs = [i for i in mirror.confs if i > meta.index]
        else:
            mirror.ids = [cid]
            mirror.confs = []
        mirror.base = meta.index

    def _check_snapshot_conf(self, node: int, cid: int, meta: SnapshotMetadata) -> None:
        expected = self._chain_conf[cid]
        carried = Membership.of(meta.conf_state)
        if carried != expected:
            raise self.fail(
                f"node {node}'s snapshot at {meta.index} carries {carried}, but the "
                f"configuration there is {expected}"
            )

    def _may_campaign(self, node: int, config: Membership) -> bool:
        """A voter of the configuration its log holds, or of the one before it while the change
        that removed it is uncommitted there (thesis 4.2.2)."""
        if node in config.voters:
            return True
        mirror = self._logs[node]
        if not mirror.confs or mirror.confs[-1] <= self._hard[node].commit:
            return False
        before = mirror.id_at(mirror.confs[-1] - 1)
        return before is not None and node in self._chain_conf[before].voters

    def _config_of(self, node: int) -> Membership:
        """The configuration node ``node``'s persisted log puts in force."""
        return self._chain_conf[self._logs[node].ids[-1]]

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(
        self, node: int, meta: SnapshotMetadata, hard_state: HardState, entries: Sequence[Entry]
    ) -> None:
        """A node (re)started from persisted state: snapshot ``meta``, ``hard_state``, log. A
        node that joins starts from nothing: no snapshot, no configuration."""
        self.checks += 1
        cid = self._known(node, meta.index, meta.term)
        if meta.index or meta.conf_state.voters:
            self._check_snapshot_conf(node, cid, meta)
        mirror = _LogMirror(meta.index, cid)
        self._append(node, mirror, entries)
        before = self._logs.get(node)
        if before is not None:
            self._check_kept(node, before, mirror)
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

    def _check_kept(self, node: int, before: _LogMirror, after: _LogMirror) -> None:
        """A restarted node's log holds what it had persisted (or a snapshot covers it)."""
        last = before.last_index
        if last > after.base and after.id_at(last) != before.ids[-1]:
            raise self.fail(
                f"node {node} restarted without the log it had persisted through {last} "
                f"(it holds {after.last_index})"
            )

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
        if node in self._leading:
            self._check_one_pending_change(node)

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

    def _check_one_pending_change(self, node: int) -> None:
        """Thesis 4.1: a leader proposes a change only once the previous one committed."""
        confs = self._logs[node].confs
        commit = self._hard[node].commit
        pending = confs[bisect_right(confs, commit) :]
        if len(pending) > 1:
            raise self.fail(
                f"node {node} leads with {len(pending)} uncommitted conf entries (at {pending}) "
                f"beyond its commit index {commit}"
            )

    def on_role(self, node: int, role: Role, term: int) -> None:
        """The node's role changed (called after that Ready was persisted)."""
        self.checks += 1
        if role is not Role.LEADER:
            self._leading.pop(node, None)
            if role is Role.FOLLOWER:
                return
        config = self._config_of(node)
        if not self._may_campaign(node, config):
            raise self.fail(
                f"node {node} became {role.value} in term {term}, but its log makes it no voter "
                f"(voters {config.voters}, learners {config.learners})"
            )
        if role is not Role.LEADER:
            return
        holder = self._leader_of_term.setdefault(term, node)
        if holder != node:
            raise self.fail(f"election safety: nodes {holder} and {node} both lead term {term}")
        granted = {v for v in config.voters if self._votes.get((v, term)) == node}
        if not _voters_hold(config.voters, granted):
            raise self.fail(
                f"node {node} leads term {term} with the votes of {sorted(granted)} only, "
                f"no majority of the voters {config.voters}"
            )
        self._leading[node] = term
        if self._max_commit and self._chain_term[self._max_commit_id] <= term:
            self._check_complete(node, term)
        self._check_one_pending_change(node)

    def on_vote_request(self, node: int, term: int) -> None:
        """The node sent a (pre-)vote request for ``term``: it must be a voter."""
        config = self._config_of(node)
        if not self._may_campaign(node, config):
            raise self.fail(
                f"node {node} asked for votes in term {term}, but its log makes it no voter "
                f"(voters {config.voters}, learners {config.learners})"
            )

    def on_configuration(
        self, node: int, in_force: Membership, applied: int, at_applied: Membership
    ) -> None:
        """Node ``node``'s core says ``in_force`` is its configuration (its log all persisted)
        and ``at_applied`` the one at its applied index ``applied``. A node that joined and has
        not seen the entry that added it knows none (no members), legal only while the oracle
        does not count it a member either."""
        self.checks += 1
        mirror = self._logs[node]
        self._check_config(node, "in force", mirror.ids[-1], in_force)
        cid = mirror.id_at(applied)
        if cid is not None:
            self._check_config(node, f"at applied index {applied}", cid, at_applied)

    def _check_config(self, node: int, what: str, cid: int, got: Membership) -> None:
        expected = self._chain_conf[cid]
        if got == expected or (not got.members and not expected.is_member(node)):
            return
        raise self.fail(f"node {node}'s configuration {what} is {got}, its log says {expected}")

    def on_apply(self, node: int, entry: Entry) -> None:
        """The node's application applied ``entry``."""
        expected = self._applied_index[node] + 1
        if entry.index != expected:
            raise self.fail(f"node {node} applied index {entry.index}, expected {expected}")
        self._applied_index[node] = entry.index
        if entry.type == ENTRY_CONF_CHANGE:
            self._same_applied(node, entry.index, self._applied_confs, entry.data, "change")
            self._same_applied(node, entry.index, self._applied_data, b"", "command")
        else:
            self._same_applied(node, entry.index, self._applied_data, entry.data, "command")
        if entry.index > self._durable_through:
            self._check_durable_majority(node, entry)

    def _same_applied(
        self, node: int, index: int, seen: dict[int, bytes], data: bytes, what: str
    ) -> None:
        first = seen.setdefault(index, data)
        if first != data:
            raise self.fail(
                f"state machine safety: node {node} applied {what} {data!r} at {index}, "
                f"another node {first!r}"
            )

    def _check_durable_majority(self, node: int, entry: Entry) -> None:
        """An applied entry must be committed: held durably (persisted, or covered by a
        snapshot) by a majority of the voters of a configuration that may have committed it
        (module docstring). A chain id names the prefix too, so the prefix is held."""
        index = entry.index
        cid = self._at.get((index, entry.term))
        holders = {
            n
            for n, mirror in self._logs.items()
            if mirror.base >= index or (cid is not None and mirror.id_at(index) == cid)
        }
        configs = [self._chain_conf[cid]] if cid is not None else []
        for n in holders:
            mirror = self._logs[n]
            confs = mirror.confs
            after = bisect_right(confs, index)
            if mirror.base < index and after < len(confs):
                configs.append(self._chain_conf[mirror.ids[confs[after] - mirror.base]])
        if not any(_voters_hold(c.voters, holders) for c in configs):
            voters = configs[0].voters if configs else ()
            raise self.fail(
                f"durability: node {node} applied index {index} (term {entry.term}), which only "
                f"{sum(1 for v in voters if v in holders)} of the voters {voters} hold durably"
            )
        self._durable_through = index

    def on_restore(
        self,
        node: int,
        index: int,
        applied: Sequence[bytes],
        conf_changes: Mapping[int, bytes] | None = None,
    ) -> None:
        """The node's application restored a snapshot holding ``applied`` (the commands at
        indexes 1..index) and ``conf_changes`` (the changes among them, encoded, by index)."""
        self.checks += 1
        if index < self._applied_index[node]:
            raise self.fail(f"node {node} restored snapshot {index} behind applied state")
        for i, data in enumerate(applied, start=1):
            self._same_applied(node, i, self._applied_data, data, "command (from a snapshot)")
        for i, data in (conf_changes or {}).items():
            self._same_applied(node, i, self._applied_confs, data, "change (from a snapshot)")
        self._applied_index[node] = index

    def applied(self, index: int) -> bytes | None:
        """The command any node applied at ``index`` (None if none did yet)."""
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
