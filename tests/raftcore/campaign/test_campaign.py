"""The randomized fault campaign: one test per seed (``--seeds N``, default 200; ``--seed S``).

Each seed builds its own cluster and fault schedule (see ``raftcore.testing.campaign``); the
invariant checker runs on every step; after healing, a leader must be elected within ~5 s and a
final command commit on every member within 10 s (virtual time), and every value a client saw
commit must still be in the log. The last test checks that the seeds that ran, together,
exercised every kind of fault and the protocol paths the faults are meant to reach, membership
changes among them.
"""

from __future__ import annotations

from raftcore.raftpb_pb2 import MessageType
from raftcore.testing.campaign import CampaignResult, run_campaign

RESULTS: list[CampaignResult] = []
COVERAGE_SEEDS = 60  # enough seeds for the coverage check when fewer ran in this session


def test_campaign(campaign_seed: int) -> None:
    """One seed of mixed faults: safety throughout, liveness and durability after healing."""
    result = run_campaign(campaign_seed)
    assert result.final_index > 0
    assert 3 <= len(result.final_voters) <= 5, result.final_voters
    RESULTS.append(result)


def test_campaign_covers_every_fault() -> None:
    """Across the seeds, every fault action ran, both cluster sizes appeared, snapshots,
    leadership transfers and pre-votes were actually sent, and ReadIndex reads were answered;
    every kind of membership change committed (a leader removing itself, a replacement carried
    through, a removed node left running among them) and some clusters ended with voters they
    were not born with."""
    results = list(RESULTS)
    if len(results) < COVERAGE_SEEDS:
        results += [run_campaign(seed) for seed in range(COVERAGE_SEEDS)]
    actions: set[str] = set()
    sent: dict[int, int] = {}
    for result in results:
        actions.update(result.actions)
        for kind, count in result.messages_sent.items():
            sent[kind] = sent.get(kind, 0) + count
    expected_actions = {
        "partition",
        "partition3",
        "bridge",
        "heal",
        "isolate_leader",
        "disconnect",
        "connect",
        "crash",
        "restart",
        "unreliable",
        "reorder",
        "duplicate",
        "transfer",
        "elect",
        "burst",
        "membership",
        "add_learner",
        "promote",
        "remove",
        "remove_leader",
        "replace",
        "left_running",
        "late_join",
    }
    assert expected_actions <= actions, f"never ran: {sorted(expected_actions - actions)}"
    assert {r.servers for r in results} == {3, 5}
    for kind in (
        MessageType.MSG_SNAPSHOT,
        MessageType.MSG_TIMEOUT_NOW,
        MessageType.MSG_PRE_VOTE,
        MessageType.MSG_VOTE,
    ):
        assert sent.get(kind, 0) > 0, f"no {MessageType.Name(kind)} was ever sent"
    assert sum(r.acknowledged for r in results) > 0
    assert sum(r.reads_answered for r in results) > 0
    assert sum(r.conf_changes for r in results) > 0
    assert any(max(r.final_voters) > r.servers for r in results)
    assert {len(r.final_voters) for r in results} == {3, 4, 5}
