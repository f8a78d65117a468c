"""A simulated Raft cluster in virtual time: 6.5840's config.go, written fresh for raftcore.

Theory of operation
-------------------
Each node is a :class:`SimNode`: a ``RawNode`` over a ``MemoryStorage``, a ``ReadyPersister``, a
:class:`~raftcore.testing.app.RecordingApp` and a :class:`~raftcore.testing.network.Port`. It is
driven by three kinds of events on one :class:`~raftcore.testing.scheduler.Scheduler`: its tick
timer (every ``tick_ms`` of virtual time, each node at its own random phase), messages delivered
by the :class:`~raftcore.testing.network.SimNetwork`, and proposals. After each event the node
drains its Readys with the runner loop of docs/raftcore.md (persist, restore, send, apply,
advance) and the :class:`~raftcore.testing.invariants.InvariantChecker` sees every step of it.
A send the network refuses (peer cut off or crashed) is reported with ``report_unreachable``, as
a real runner does on a refused connection.
Proposals only *schedule* the drain at the current instant, so proposals made back to back
(6.5840's concurrent ``Start()`` calls) leave in one Ready, as a real runner's loop would batch
them.

Crash keeps the node's storage as "what was persisted" and drops everything else (RawNode,
application, in-flight messages, via the network's incarnations); restart builds a new node from
``storage.copy()`` and restores the application from the snapshot, exactly as 6.5840's
``crash1``/``start1`` do. Like there, a crashed node is also disconnected, and a restarted one
stays disconnected until :meth:`SimCluster.connect`.

Membership changes (thesis 4.1-4.2.3) go through the leader's core
(:meth:`SimCluster.propose_conf_change`, or :meth:`SimCluster.change` which retries until the
change commits); an added node is started with empty storage by ``join``, a removed one may be
stopped for good by ``retire`` or left running. After each drain the checker compares the
core's configurations with the log's, and the application snapshots with the configuration at
its index (``RawNode.membership_at``), only where the core knows one: a node that joined does
not know the configuration before the entry that added it.

Test drivers run in virtual time: :meth:`SimCluster.sleep` advances it, and the helpers that
6.5840 runs in goroutines are generators (``*_proc``) that yield how long to sleep, run
concurrently with :meth:`SimCluster.spawn` or alone with :meth:`SimCluster.run`. Every failure is
a :class:`~raftcore.testing.invariants.SimulationFailure` naming the seed; a run is a pure
function of its seed and the cluster options.

Timing: a tick is ``tick_ms`` = 10 ms; the leader heartbeats every ``heartbeat_tick`` = 10 ticks
(10 heartbeats a second, the course's limit); followers time out after ``election_tick`` = 30 to
59 ticks (300-590 ms), so with pre-vote an election settles well within the course's 5 s.

The node's event plumbing, the cluster's seeding, crash/restart and driver processes live in
:mod:`raftcore.testing.runtime`, shared with the KV cluster; this module adds the recording
application's runner loop and 6.5840's helpers.
"""

from __future__ import annotations

import random

from raftcore import (
    ConfChangeError,
    NotLeaderError,
    ProposalDroppedError,
    RawNode,
    ReadyPersister,
    Role,
)
from raftcore.membership import Membership
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import CONF_ADD_LEARNER, ConfChange, Message, SnapshotMetadata
from raftcore.testing.app import RecordingApp
from raftcore.testing.process import Proc
from raftcore.testing.runtime import ClusterOptions, SimClusterBase, SimNodeBase
from raftcore.testing.scheduler import MS, SECOND

__all__ = [
    "ClusterOptions",
    "SimCluster",
    "SimNode",
]


class SimNode(SimNodeBase):
    """One incarnation of one node with a :class:`RecordingApp`; dead after a crash."""

    cluster: SimCluster

    def __init__(
        self, cluster: SimCluster, node_id: int, storage: MemoryStorage, rng: random.Random
    ) -> None:
        self.app = RecordingApp()
        checker = cluster.checker
        meta = storage.snapshot_metadata()
        hard_state, _ = storage.initial_state()
        checker.on_start(
            node_id,
            meta,
            hard_state,
            storage.entries(storage.first_index(), storage.last_index() + 1),
        )
        if meta.index:
            self.app.restore(storage.read_snapshot(0, storage.snapshot_size()))
            if self.app.applied_index != meta.index:
                raise cluster.fail(f"node {node_id}'s snapshot at {meta.index} holds other data")
            checker.on_restore(node_id, meta.index, self.app.commands(), _encoded(self.app))
        self._last_snapshot = meta.index
        raw = RawNode(
            cluster.config_for(node_id),
            storage,
            rng,
            applied=meta.index,
            clock=cluster.core_clock(node_id),
        )
        self.raw = raw
        self.persister = ReadyPersister(storage)
        self._commit = raw.commit_index
        super().__init__(cluster, node_id, storage, raw)

    def deliver(self, msg: Message) -> None:
        """Step ``msg`` into the core."""
        self.raw.step(msg)

    # -- the runner loop ------------------------------------------------------------------------

    def drain(self) -> None:
        """Handle every pending Ready, in the order the Ready contract prescribes."""
        raw = self.raw
        checker = self.cluster.checker
        app = self.app
        node_id = self.id
        while raw.has_ready():
            rd = raw.ready()
            installed = self.persister.persist(rd)
            self.check_persisted(rd, installed)
            if installed is not None:
                app.restore(self.storage.read_snapshot(0, self.storage.snapshot_size()))
                if app.applied_index != installed.index:
                    raise self.cluster.fail(
                        f"node {node_id} installed snapshot {installed.index} holding "
                        f"{app.applied_index} entries"
                    )
                checker.on_restore(node_id, app.applied_index, app.commands(), _encoded(app))
                self._last_snapshot = installed.index
            self.send(rd.messages)
            self.send(rd.persisted_messages)
            for entry in rd.committed_entries:
                checker.on_apply(node_id, entry)
                app.apply(entry)
            for rs in rd.read_states:
                checker.on_read_state(node_id, rs.index, rs.context)
                self.cluster.reads_answered += 1
            raw.advance(rd)
            self._maybe_snapshot()
        commit = raw.commit_index
        if commit < self._commit:
            raise checker.fail(f"node {node_id} commit index went back: {self._commit} -> {commit}")
        self._commit = commit
        applied = app.applied_index
        checker.on_configuration(node_id, raw.membership, applied, raw.membership_at(applied))

    def _maybe_snapshot(self) -> None:
        every = self.cluster.options.snapshot_every
        app = self.app
        if every is None or app.applied_index - self._last_snapshot < every:
            return
        membership = self.raw.membership_at(app.applied_index)
        if not membership.members:
            return  # joined, and not yet applied the entry that added it
        meta = SnapshotMetadata(
            index=app.applied_index,
            term=app.applied_term,
            conf_state=membership.conf_state(),
        )
        writer = self.storage.snapshot_writer(meta)
        writer.write(app.snapshot())
        writer.commit()
        self.cluster.checker.on_compact(self.id, meta)
        self._last_snapshot = meta.index


def _encoded(app: RecordingApp) -> dict[int, bytes]:
    """The membership changes ``app`` holds, encoded, for the checker."""
    return {index: change.SerializeToString() for index, change in app.conf_changes.items()}


class SimCluster(SimClusterBase[SimNode]):
    """N simulated nodes (ids 1..n, then any that join) on one network, with 6.5840's test
    helpers and membership changes."""

    def __init__(
        self,
        n: int,
        seed: int,
        options: ClusterOptions | None = None,
        *,
        reliable: bool = True,
    ) -> None:
        self.options = options or ClusterOptions()
        self.apps: dict[int, RecordingApp] = {}
        """Each node's application; a crashed node's keeps what it had applied."""
        self.reads_answered = 0
        """ReadIndex requests answered with a read point (each one checked for staleness)."""
        self._read_seq = 0
        self._addresses = 0  # addresses handed to added nodes (each is new)
        super().__init__(n, seed, self.options, reliable=reliable)

    def new_node(self, node_id: int, storage: MemoryStorage, rng: random.Random) -> SimNode:
        """A :class:`SimNode` over ``storage``; its application is also kept in :attr:`apps`."""
        node = SimNode(self, node_id, storage, rng)
        self.apps[node_id] = node.app
        return node

    # -- requests -------------------------------------------------------------------------------

    def start(self, i: int, command: bytes) -> tuple[int, int, bool]:
        """Propose ``command`` at node ``i``: (index, term, True), or (-1, term, False) if it
        is not the leader (or crashed, term 0). Replication starts at the current instant."""
        node = self.nodes[i]
        if node is None:
            return -1, 0, False
        try:
            index = node.raw.propose(command)
        except (NotLeaderError, ProposalDroppedError):
            return -1, node.raw.term, False
        node.schedule_drain()
        return index, node.raw.term, True

    def read_index(self, i: int) -> bytes | None:
        """Ask node ``i`` for a linearizable read point; its context, or None if ``i`` is down
        or not the leader. The invariant checker verifies the answer when it comes."""
        node = self.nodes[i]
        if node is None:
            return None
        self._read_seq += 1
        context = b"read-%d" % self._read_seq
        try:
            node.raw.read_index(context)
        except NotLeaderError:
            return None
        self.checker.on_read_request(context)
        node.schedule_drain()
        return context

    def transfer_leadership(self, i: int, target: int) -> bool:
        """Ask node ``i`` to hand leadership to ``target``; False if ``i`` is down or not leader."""
        node = self.nodes[i]
        if node is None:
            return False
        try:
            node.raw.transfer_leadership(target)
        except NotLeaderError:
            return False
        node.schedule_drain()
        return True

    def propose_conf_change(self, i: int, kind: int, node_id: int = 0) -> tuple[int, int] | None:
        """Propose a membership change at node ``i``: CONF_ADD_LEARNER (the core picks the id;
        the node gets a fresh address and is not started: :meth:`join` does that), or
        CONF_PROMOTE / CONF_REMOVE of ``node_id``. Returns (index, node id), or None if ``i``
        is down, does not lead, or refuses the change for now (another one pending, no entry
        of its term committed yet, a learner still behind). A change that can never be made
        raises ConfChangeError: a driver's mistake."""
        node = self.nodes[i]
        if node is None:
            return None
        address = ""
        if kind == CONF_ADD_LEARNER:
            self._addresses += 1
            address = f"sim-{self._addresses}"
        try:
            done = node.raw.propose_conf_change(kind, node_id, address)
        except (NotLeaderError, ProposalDroppedError):
            return None
        except ConfChangeError as refused:
            if refused.retryable:
                return None
            raise
        node.schedule_drain()
        return done

    def change_proc(self, kind: int, node_id: int = 0) -> Proc[tuple[int, int]]:
        """:meth:`one_proc` for a membership change: propose it wherever a leader takes it (an
        add starts the new node at once) until it commits; (index, node id). If another entry
        commits at its index instead, the change vanished and is proposed again. Fails after
        10 s of virtual time."""
        t0 = self.now
        while self.now - t0 < 10 * SECOND:
            done = self._propose_change_anywhere(kind, node_id)
            if done is None:
                yield 50 * MS
                continue
            index, changed = done
            if kind == CONF_ADD_LEARNER:
                self.join(changed)
            while self.now - t0 < 10 * SECOND and not self.n_committed(index)[0]:
                yield 20 * MS
            applied = self.applied_change(index)
            if applied is not None and (applied.type, applied.node_id) == (kind, changed):
                return done
        raise self.fail(f"conf change {kind} of {node_id} did not commit in 10 s")

    def _propose_change_anywhere(self, kind: int, node_id: int) -> tuple[int, int] | None:
        for i in self.active:
            done = self.propose_conf_change(i, kind, node_id)
            if done is not None:
                return done
        return None

    def change(self, kind: int, node_id: int = 0) -> tuple[int, int]:
        """Run :meth:`change_proc` to completion; (index, node id) of the committed change."""
        return self.run(self.change_proc(kind, node_id))

    # -- observations ---------------------------------------------------------------------------

    def membership(self, i: int) -> Membership:
        """The configuration in force on running node ``i`` (the latest its log holds)."""
        return self.node(i).raw.membership

    def applied_change(self, index: int) -> ConfChange | None:
        """The membership change some node applied at ``index``, if one did."""
        for app in self.apps.values():
            change = app.conf_changes.get(index)
            if change is not None:
                return change
        return None

    def term_of(self, i: int) -> int:
        """Current term of running node ``i``."""
        return self.node(i).raw.term

    def is_leader(self, i: int) -> bool:
        """Whether node ``i`` runs and believes it leads."""
        node = self.nodes[i]
        return node is not None and node.raw.role is Role.LEADER

    def n_committed(self, index: int) -> tuple[int, bytes | None]:
        """How many nodes applied ``index`` (crashed ones count what they had), and its data.

        Crashed nodes keep the log their application had, like 6.5840's ``cfg.logs``.
        """
        count = 0
        data: bytes | None = None
        for i in self.ids:
            applied = self.apps[i].get(index)
            if applied is None:
                continue
            if data is not None and applied != data:
                raise self.fail(f"committed values at {index} differ: {data!r} vs {applied!r}")
            count += 1
            data = applied
        return count, data

    def rpc_count(self, i: int) -> int:
        """RPCs (requests) delivered to node ``i`` so far."""
        return self.network.stats.requests_received.get(i, 0)

    def rpc_total(self) -> int:
        """RPCs delivered to all nodes so far (6.5840 sums ``rpcCount`` over servers)."""
        return sum(self.rpc_count(i) for i in self.ids)

    def bytes_total(self) -> int:
        """Bytes of every request sent so far (labrpc counts request arguments)."""
        return self.network.stats.request_bytes

    # -- 6.5840's checks ------------------------------------------------------------------------

    def leaders_by_term(self) -> dict[int, list[int]]:
        """Connected nodes that believe they lead, by term."""
        leaders: dict[int, list[int]] = {}
        for i in self.ids:
            if self.connected(i) and self.is_leader(i):
                leaders.setdefault(self.term_of(i), []).append(i)
        return leaders

    def check_one_leader(self) -> int:
        """Wait (up to ~5 s) until connected nodes have a leader; one per term; return it."""
        for _ in range(10):
            self.sleep(self.rng.randrange(450, 551) * MS)
            leaders = self.leaders_by_term()
            for term, ids in leaders.items():
                if len(ids) > 1:
                    raise self.fail(f"term {term} has {len(ids)} leaders: {ids}")
            if leaders:
                return leaders[max(leaders)][0]
        raise self.fail("expected one leader, got none")

    def check_terms(self) -> int:
        """All connected nodes agree on the term; return it."""
        term = -1
        for i in self.ids:
            if self.connected(i):
                t = self.term_of(i)
                if term == -1:
                    term = t
                elif t != term:
                    raise self.fail(f"servers disagree on term: {term} vs {t}")
        return term

    def check_no_leader(self) -> None:
        """No connected node believes it leads."""
        for i in self.ids:
            if self.connected(i) and self.is_leader(i):
                raise self.fail(f"expected no leader among connected servers, but {i} leads")

    def one_proc(self, command: bytes, expected: int, retry: bool) -> Proc[int]:
        """6.5840's ``one``: propose until a leader takes it and ``expected`` nodes applied it.

        Returns the index. Fails after 10 s of virtual time, or after 2 s of one attempt
        without ``retry``.
        """
        t0 = self.now
        starts = 0
        while self.now - t0 < 10 * SECOND:
            index = -1
            for _ in self.ids:
                starts = starts % len(self.ids) + 1
                i = self.ids[starts - 1]
                if self.connected(i):
                    index1, _, ok = self.start(i, command)
                    if ok:
                        index = index1
                        break
            if index != -1:
                t1 = self.now
                while self.now - t1 < 2 * SECOND:
                    nd, data = self.n_committed(index)
                    if nd > 0 and nd >= expected and data == command:
                        return index
                    yield 20 * MS
                if not retry:
                    raise self.fail(f"one({command[:20]!r}) failed to reach agreement")
            else:
                yield 50 * MS
        raise self.fail(f"one({command[:20]!r}) failed to reach agreement in 10 s")

    def one(self, command: bytes, expected: int, retry: bool) -> int:
        """Run :meth:`one_proc` to completion; the index the command committed at."""
        return self.run(self.one_proc(command, expected, retry))

    def wait_proc(self, index: int, n: int, start_term: int) -> Proc[bytes | None]:
        """6.5840's ``wait``: until ``n`` nodes applied ``index``; its data, or None once some
        node's term passed ``start_term`` (-1: never give up that way)."""
        pause = 10 * MS
        for _ in range(30):
            nd, _ = self.n_committed(index)
            if nd >= n:
                break
            yield pause
            if pause < SECOND:
                pause *= 2
            if start_term > -1:
                for i in self.ids:
                    node = self.nodes[i]
                    if node is not None and node.raw.term > start_term:
                        return None
        nd, data = self.n_committed(index)
        if nd < n:
            raise self.fail(f"only {nd} decided for index {index}; wanted {n}")
        return data

    def wait(self, index: int, n: int, start_term: int) -> bytes | None:
        """Run :meth:`wait_proc` to completion."""
        return self.run(self.wait_proc(index, n, start_term))

    def heal_all(self) -> None:
        """Restart every crashed node (but the retired), reconnect everyone, mend every link,
        reliable network (no loss, reordering or duplication)."""
        for i in self.active:
            if self.nodes[i] is None:
                self.restart(i)
            self.connect(i)
        self.network.heal()
        self.network.reliable = True
        self.network.long_reordering = False
        self.network.duplicate_fraction = 0.0
