"""The campaign has teeth: with a deliberately broken node or network, some seed fails.

Each mutant breaks one thing Raft's safety rests on, using only the public surface (the bytes on
the network, what storage keeps across a crash); the campaign must report an invariant violation
within a few seeds. Without these, a checker that never fires would look like a passing suite.
"""

from __future__ import annotations

import pytest

from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import HardState, Message, MessageType
from raftcore.testing import network
from raftcore.testing.campaign import run_campaign
from raftcore.testing.invariants import InvariantViolation

SEEDS = 40


def first_violation() -> InvariantViolation:
    for seed in range(SEEDS):
        try:
            run_campaign(seed)
        except InvariantViolation as violation:
            return violation
    raise AssertionError(f"no violation in {SEEDS} seeds: the checks lack teeth")


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
