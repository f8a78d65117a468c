"""The campaign has teeth: with a deliberately broken node or network, some seed fails.

Each mutant breaks one thing Raft's safety rests on, using only the public surface (the bytes on
the network, what storage keeps across a crash); the campaign must report an invariant violation
within a few seeds. Without these, a checker that never fires would look like a passing suite.

The last two break the core's own durability rules (``raftcore.Ready``), so they are caught by
the campaign that runs the asynchronous pipeline, the KV one (``kvserver.testing.campaign``),
where a Ready's sync ends after its messages left and its entries were applied.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvserver.testing.campaign import run_pipeline_campaign
from raftcore import RawNode, Ready, Role, quorum
from raftcore.memory_storage import MemoryStorage
from raftcore.raft import Raft
from raftcore.raftpb_pb2 import HardState, Message, MessageType
from raftcore.testing import network
from raftcore.testing.campaign import run_campaign
from raftcore.testing.invariants import InvariantViolation

SEEDS = 40


def first_violation(campaign: Callable[[int], object] = run_campaign) -> InvariantViolation:
    """The first violation ``campaign`` reports over SEEDS seeds (the raftcore campaign unless
    told otherwise); AssertionError if there is none."""
    for seed in range(SEEDS):
        try:
            campaign(seed)
        except InvariantViolation as violation:
            return violation
    raise AssertionError(
        f"no violation in {SEEDS} seeds of {campaign.__name__}: the checks lack teeth"
    )


def test_votes_granted_against_the_rules_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every refused (pre-)vote arrives as granted: two leaders in a term, or a leader missing
    committed entries, follows."""
    send = network.SimNetwork._send

    def lying_send(
        self: network.SimNetwork, port: network.Port, dst: int, payload: bytes, is_request: bool
    ) -> None:
        msg = Message.FromString(payload)
        votes = (MessageType.MSG_VOTE_RESPONSE, MessageType.MSG_PRE_VOTE_RESPONSE)
        if msg.type in votes and msg.reject:
            msg.reject = False
            payload = msg.SerializeToString()
        send(self, port, dst, payload, is_request)

    monkeypatch.setattr(network.SimNetwork, "_send", lying_send)
    violation = first_violation()
    assert "seed" in str(violation)


def test_a_log_tail_lost_in_a_crash_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Storage loses its last log entry (and the commit covering it) on every crash: entries a
    majority acknowledged can vanish."""
    copy = MemoryStorage.copy

    def torn_copy(self: MemoryStorage) -> MemoryStorage:
        clone = copy(self)
        first, last = clone.first_index(), clone.last_index()
        if last < first:
            return clone
        hard_state, _ = clone.initial_state()
        torn = MemoryStorage(voters=clone.initial_state()[1].voters)
        snapshot = clone.snapshot_metadata()
        if snapshot.index:
            writer = torn.snapshot_writer(snapshot)
            writer.write(clone.read_snapshot(0, clone.snapshot_size()))
            writer.commit()
        commit = min(hard_state.commit, last - 1)
        torn.save(
            HardState(
                term=hard_state.term, vote=hard_state.vote, commit=max(commit, snapshot.index)
            ),
            clone.entries(first, last),
        )
        return torn

    monkeypatch.setattr(MemoryStorage, "copy", torn_copy)
    violation = first_violation()
    assert "seed" in str(violation)


def test_a_leader_counting_learners_for_its_quorum_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The leader's commit quorum counts learners as if they voted (thesis 4.2.1: they never
    count): an entry the leader and two learners hold commits with one voter of three."""

    def counting_learners(self: Raft) -> bool:
        prs = self.prs
        index = quorum.committed_index((*self.voters, *self.learners), lambda v: prs[v].match)
        if not self.log.maybe_commit(index, self.term):
            return False
        waiting, self.reads_awaiting_commit = self.reads_awaiting_commit, []
        for context in waiting:
            self._start_read(context)
        return True

    monkeypatch.setattr(Raft, "_maybe_commit", counting_learners)
    violation = first_violation()
    assert "durability" in str(violation)


def test_a_leader_counting_its_unsynced_entries_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The leader's own match is its last index, durable or not: a single voter then commits,
    and applies, entries no disk holds yet. (With peers the one-Ready-at-a-time pipeline hides
    it: the commit it computes leaves only with the next Ready, after this one's sync.)"""
    flush = Raft.flush

    def counting_flush(self: Raft) -> None:
        flush(self)
        if self.role is Role.LEADER:
            self.prs[self.id].match = self.log.last_index()
            if self._maybe_commit():
                self.dirty.update(self.peers)

    monkeypatch.setattr(Raft, "flush", counting_flush)
    violation = first_violation(run_pipeline_campaign)
    assert "durability" in str(violation)


def test_an_entry_applied_before_a_majority_holds_it_durably_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Acknowledgements leave before their sync (every message is sent at once): the leader
    commits, and applies, an entry that only its own disk holds."""
    ready = RawNode.ready

    def eager_ready(self: RawNode) -> Ready:
        rd = ready(self)
        rd.messages, rd.persisted_messages = rd.messages + rd.persisted_messages, []
        return rd

    monkeypatch.setattr(RawNode, "ready", eager_ready)
    violation = first_violation(run_pipeline_campaign)
    assert "durability" in str(violation)
