"""Randomized schedules (hypothesis) against Raft's safety properties (paper figure 3, 5.4):
election safety, log matching, leader completeness, state machine safety, and the Ready
contract (nothing applied before it is persisted; see raftcore_pump.Pump.process)."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raftcore_pump import Pump

from raftcore import NotLeaderError, ProposalDroppedError, Role

OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "tick",
                "tick",
                "deliver",
                "deliver",
                "deliver",
                "drop",
                "propose",
                "compact",
                "restart",
                "transfer",
                "read",
            ]
        ),
        st.integers(0, 1 << 16),
    ),
    min_size=20,
    max_size=250,
)


class Checker:
    def __init__(self, pump: Pump) -> None:
        self.pump = pump
        self.leaders: dict[int, int] = {}  # term -> leader
        self.applied: dict[int, tuple[int, bytes]] = {}  # index -> (term, data)
        self.read_floor: dict[bytes, int] = {}  # read context -> lowest acceptable index

    def check(self) -> None:
        for i, node in self.pump.nodes.items():
            raw = node.raw
            if raw.role is Role.LEADER:
                # Election safety (5.2): at most one leader per term.
                assert self.leaders.setdefault(raw.term, i) == i
                # Leader completeness (5.4.1): a leader holds every entry applied anywhere.
                st_ = node.storage
                for index, (term, _) in self.applied.items():
                    if index >= st_.first_index():
                        assert index <= st_.last_index() and st_.term(index) == term
        for node in self.pump.nodes.values():
            for rs in node.reads:
                assert rs.index >= self.read_floor[rs.context]
            node.reads.clear()
            for e in node.applied_entries:
                # State machine safety (5.4.3): one entry per index, cluster-wide.
                assert self.applied.setdefault(e.index, (e.term, e.data)) == (e.term, e.data)
            node.applied_entries.clear()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    n=st.sampled_from([3, 5]),
    seed=st.integers(0, 1000),
    ops=OPS,
    pre_vote=st.booleans(),
    check_quorum=st.booleans(),
)
def test_random_schedules_keep_raft_safe(
    n: int, seed: int, ops: list[tuple[str, int]], pre_vote: bool, check_quorum: bool
) -> None:
    """Figure 3's guarantees hold under arbitrary message loss, reordering, crashes, snapshots,
    transfers and reads, as long as the Ready contract is followed."""
    pump = Pump(
        n,
        seed=seed,
        election_tick=4,
        snapshot_chunk_bytes=32,
        max_inflight_msgs=4,
        pre_vote=pre_vote,
        check_quorum=check_quorum,
    )
    checker = Checker(pump)
    proposals = 0
    for op, k in ops:
        node = pump.nodes[pump.ids[k % n]]
        if op == "tick":
            node.raw.tick()
        elif op in ("deliver", "drop") and pump.queue:
            m = pump.queue.pop(k % len(pump.queue))  # any message: reordering
            if op == "deliver":
                pump.nodes[m.to].raw.step(m)
        elif op == "propose":
            try:
                node.raw.propose(b"p%d" % proposals)
                proposals += 1
            except (NotLeaderError, ProposalDroppedError):
                pass
        elif op == "compact" and node.last_applied > node.storage.first_index():
            node.compact()
        elif op == "restart":
            pump.restart(node.raw.id)
        elif op == "transfer":
            with contextlib.suppress(NotLeaderError, ValueError):
                node.raw.transfer_leadership(pump.ids[(k >> 4) % n])
        elif op == "read":
            context = b"r%d" % k
            with contextlib.suppress(NotLeaderError, ValueError):
                # Linearizable read (thesis 6.4): its index covers every entry committed
                # before it was asked for.
                floor = max(n.raw.commit_index for n in pump.nodes.values())
                node.raw.read_index(context)
                checker.read_floor[context] = floor
        pump.process_all()
        checker.check()
    # Heal: with every message delivered and time passing, the cluster converges.
    for _ in range(60):
        pump.tick(1)
        checker.check()
    leader = pump.leader()
    assert leader
    pump.nodes[leader].raw.propose(b"final")
    pump.deliver()
    pump.tick(2)
    checker.check()
    states = [n.applied_data() for n in pump.nodes.values()]
    assert all(s == states[0] for s in states) and states[0][-1] == b"final"
