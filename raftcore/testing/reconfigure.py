"""The fault campaign's membership fault: random single-server changes, one plan at a time.

Theory of operation
-------------------
A plan is one of: *add* a learner (the new node is started with empty storage, as a server
that joins is: at once, or up to two seconds later), *promote* a learner, *remove* a voter (the
leader too, thesis 4.2.2) or a learner, and *replace* a voter (add a learner, promote it, remove
an old voter; with the most voters allowed, remove first). The plans keep the cluster between
:data:`MIN_VOTERS` and :data:`MAX_VOTERS` voters and at most :data:`MAX_LEARNERS` learners,
judged by the leader's configuration (the latest in its log: every committed change and at most
one pending).

A plan runs as a driver process, alone (one change at a time is also the core's rule, thesis
4.1): each step is proposed to whoever leads, proposed again while it is refused for now (a
change still pending, a new leader that has not committed in its term, a learner behind) and
followed until an entry commits at its index. If that entry is another one, the change
vanished (its leader lost its log tail) and is proposed again; if the campaign ends first, the
plan is abandoned where it stands, which the core must survive too. A removed node is then
stopped for good, or, when pre-vote and check-quorum are both on (what keeps a removed server
from disrupting, thesis 4.2.3), sometimes left running, never told of its removal.

Counts go to the campaign's ``actions``: each change committed (``add_learner``, ``promote``,
``remove``, of which ``remove_leader``), each ``replace`` completed, each new node started
late (``late_join``) and each removed node ``left_running``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raftcore.raftpb_pb2 import CONF_ADD_LEARNER, CONF_PROMOTE, CONF_REMOVE
from raftcore.testing.cluster import SimCluster
from raftcore.testing.process import Proc, Process
from raftcore.testing.scheduler import MS

__all__ = ["MAX_LEARNERS", "MAX_VOTERS", "MIN_VOTERS", "Reconfigurer"]

MIN_VOTERS = 3
MAX_VOTERS = 5
MAX_LEARNERS = 2

Target = Callable[[tuple[int, ...], tuple[int, ...]], int]
"""Names the node a change concerns from the leader's (voters, learners)."""

_NAMES: dict[int, str] = {
    CONF_ADD_LEARNER: "add_learner",
    CONF_PROMOTE: "promote",
    CONF_REMOVE: "remove",
}


class Reconfigurer:
    """Runs the membership plans of one campaign on ``cluster``; ``stopped`` says when the
    campaign ends; ``counts`` is where its actions are counted."""

    def __init__(
        self,
        cluster: SimCluster,
        rng: random.Random,
        counts: dict[str, int],
        stopped: Callable[[], bool],
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.counts = counts
        self.stopped = stopped
        self.proc: Process[None] | None = None
        """The plan running (or the last one)."""

    def start(self) -> None:
        """Start a random plan the leader's configuration allows, unless one still runs or no
        node leads."""
        if self.proc is not None and not self.proc.done:
            return
        leader = self._leader()
        if leader is None:
            return
        m = self.cluster.membership(leader)
        plans: list[Callable[[], Proc[None]]] = []
        if len(m.learners) < MAX_LEARNERS:
            plans += [self._add, self._replace]
        if m.learners and len(m.voters) < MAX_VOTERS:
            plans.append(self._promote)
        if m.learners or len(m.voters) > MIN_VOTERS:
            plans.append(self._remove)
        self.proc = self.cluster.spawn(self.rng.choice(plans)())

    # -- plans ----------------------------------------------------------------------------------

    def _add(self) -> Proc[None]:
        yield from self._change(CONF_ADD_LEARNER, lambda voters, learners: 0)

    def _promote(self) -> Proc[None]:
        yield from self._change(CONF_PROMOTE, lambda voters, learners: self._pick(learners))

    def _remove(self) -> Proc[None]:
        def victim(voters: tuple[int, ...], learners: tuple[int, ...]) -> int:
            return self._pick((*voters, *learners) if len(voters) > MIN_VOTERS else learners)

        yield from self._change(CONF_REMOVE, victim)

    def _replace(self) -> Proc[None]:
        new = yield from self._change(CONF_ADD_LEARNER, lambda voters, learners: 0)
        if new is None:
            return
        steps: list[tuple[int, Target]] = [
            (CONF_PROMOTE, lambda voters, learners: new if new in learners else 0),
            (
                CONF_REMOVE,
                lambda voters, learners: self._pick(tuple(v for v in voters if v != new)),
            ),
        ]
        leader = self._leader()
        if leader is not None and len(self.cluster.membership(leader).voters) >= MAX_VOTERS:
            steps.reverse()
        for kind, target in steps:
            if (yield from self._change(kind, target)) is None:
                return
        self.counts["replace"] = self.counts.get("replace", 0) + 1

    def _pick(self, ids: tuple[int, ...]) -> int:
        return self.rng.choice(ids) if ids else 0

    # -- one change -----------------------------------------------------------------------------

    def _leader(self) -> int | None:
        cluster = self.cluster
        leaders = [i for i in cluster.ids if cluster.is_leader(i)]
        return max(leaders, key=cluster.term_of) if leaders else None

    def _change(self, kind: int, target: Target) -> Proc[int | None]:
        """Propose one change until it commits: the node it concerns, or None if the campaign
        ended first. ``target(voters, learners)`` names the node from the configuration of the
        leader it is proposed to (0 for an add: the core picks the id); 0 for another change
        means none fits there (that leader is stale, or a pending change vanished): try later."""
        cluster = self.cluster
        while not self.stopped():
            leader = self._leader()
            if leader is None:
                yield 50 * MS
                continue
            m = cluster.membership(leader)
            node = target(m.voters, m.learners)
            fits = bool(node) or kind == CONF_ADD_LEARNER
            done = cluster.propose_conf_change(leader, kind, node) if fits else None
            if done is None:
                yield self.rng.randrange(20, 100) * MS
                continue
            index, node = done
            if kind == CONF_ADD_LEARNER:
                if self.rng.random() < 0.3:
                    # The new server is not up yet: the learner costs the quorum nothing
                    # meanwhile (thesis 4.2.1), and promoting it waits until it caught up.
                    self.counts["late_join"] = self.counts.get("late_join", 0) + 1
                    yield self.rng.randrange(200, 2000) * MS
                cluster.join(node)
            while not self.stopped() and not cluster.n_committed(index)[0]:
                yield 20 * MS
            applied = cluster.applied_change(index)
            if applied is not None and (applied.type, applied.node_id) == (kind, node):
                self._committed(kind, node, leader)
                return node
        return None

    def _committed(self, kind: int, node: int, leader: int) -> None:
        counts = self.counts
        name = _NAMES[kind]
        counts[name] = counts.get(name, 0) + 1
        if kind != CONF_REMOVE:
            return
        if node == leader:
            counts["remove_leader"] = counts.get("remove_leader", 0) + 1
        options = self.cluster.options
        if options.pre_vote and options.check_quorum and self.rng.random() < 0.5:
            counts["left_running"] = counts.get("left_running", 0) + 1
        else:
            self.cluster.retire(node)
