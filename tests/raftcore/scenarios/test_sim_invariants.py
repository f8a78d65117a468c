"""The invariant checker catches each safety violation it claims to, and accepts legal runs."""

from __future__ import annotations

import pytest

from raftcore import Membership, Role
from raftcore.raftpb_pb2 import (
    CONF_ADD_LEARNER,
    ENTRY_CONF_CHANGE,
    ConfChange,
    ConfState,
    Entry,
    HardState,
    SnapshotMetadata,
)
from raftcore.testing.app import ApplyOrderError, RecordingApp, SnapshotFormatError
from raftcore.testing.invariants import InvariantChecker, InvariantViolation

EMPTY = SnapshotMetadata()


def e(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(index=index, term=term, data=data)


def conf(index: int, term: int, voters: tuple[int, ...], learners: tuple[int, ...] = ()) -> Entry:
    """A conf entry whose resulting configuration has ``voters`` and ``learners``."""
    change = ConfChange(type=CONF_ADD_LEARNER)
    change.result.CopyFrom(Membership(voters, learners, next_id=6).conf_state())
    return Entry(index=index, term=term, type=ENTRY_CONF_CHANGE, data=change.SerializeToString())


def snap(index: int, term: int, voters: tuple[int, ...] = (1, 2, 3)) -> SnapshotMetadata:
    """A snapshot's metadata, carrying the configuration ``voters``."""
    return SnapshotMetadata(index=index, term=term, conf_state=ConfState(voters=voters))


def checker(nodes: int = 3) -> InvariantChecker:
    c = InvariantChecker(seed=42, clock=lambda: 0, voters=range(1, nodes + 1))
    for i in range(1, nodes + 1):
        c.on_start(i, EMPTY, HardState(), [])
    return c


def elect(c: InvariantChecker, leader: int, term: int, *voters: int, commit: int = 0) -> None:
    """``voters`` persist their vote for ``leader`` in ``term``; then it becomes leader."""
    for v in voters:
        c.on_persist(v, None, [], HardState(term=term, vote=leader, commit=commit))
    c.on_role(leader, Role.LEADER, term)


def test_legal_history_passes() -> None:
    c = checker()
    elect(c, 1, 1, 1, 2)
    c.on_persist(1, None, [e(1, 1), e(2, 1, b"x")], None)
    c.on_persist(2, None, [e(1, 1), e(2, 1, b"x")], HardState(term=1, vote=1, commit=2))
    c.on_persist(1, None, [], HardState(term=1, vote=1, commit=2))
    for node in (1, 2):
        c.on_apply(node, e(1, 1))
        c.on_apply(node, e(2, 1, b"x"))
    c.on_compact(1, snap(2, 1))
    c.on_persist(3, snap(2, 1), [], HardState(term=1, commit=2))
    c.on_restore(3, 2, [b"", b"x"])
    c.on_role(1, Role.FOLLOWER, 2)
    elect(c, 2, 2, 2, 3, commit=2)
    assert c.applied(2) == b"x"
    assert c.checks > 0


def test_two_leaders_in_one_term() -> None:
    c = checker()
    elect(c, 1, 3, 1, 3)
    with pytest.raises(InvariantViolation, match="election safety"):
        c.on_role(2, Role.LEADER, 3)


def test_log_matching_catches_a_different_entry_at_the_same_index_and_term() -> None:
    c = checker()
    c.on_persist(1, None, [e(1, 1, b"a")], None)
    with pytest.raises(InvariantViolation, match="log matching"):
        c.on_persist(2, None, [e(1, 1, b"b")], None)


def test_log_matching_catches_a_different_prefix() -> None:
    c = checker()
    c.on_persist(1, None, [e(1, 1, b"a"), e(2, 2, b"c")], None)
    c.on_persist(2, None, [e(1, 2, b"z")], None)
    with pytest.raises(InvariantViolation, match="log matching"):
        c.on_persist(2, None, [e(2, 2, b"c")], None)


def test_overwriting_an_uncommitted_tail_is_legal() -> None:
    c = checker()
    c.on_persist(1, None, [e(1, 1, b"a"), e(2, 1, b"old")], None)
    c.on_persist(2, None, [e(1, 1, b"a"), e(2, 2, b"new")], None)
    c.on_persist(1, None, [e(2, 2, b"new")], HardState(term=2, commit=2))


def test_leader_without_a_committed_entry() -> None:
    c = checker()
    c.on_persist(1, None, [e(1, 1, b"a")], HardState(term=1, commit=1))
    with pytest.raises(InvariantViolation, match="leader completeness"):
        elect(c, 2, 2, 2, 3)


def test_commit_while_a_newer_leader_lacks_it() -> None:
    c = checker()
    elect(c, 2, 2, 2, 3)
    c.on_persist(1, None, [e(1, 1, b"a")], None)
    with pytest.raises(InvariantViolation, match="leader completeness"):
        c.on_persist(1, None, [], HardState(term=1, commit=1))


def test_commit_going_back_or_beyond_the_log() -> None:
    c = checker()
    c.on_persist(1, None, [e(1, 1)], HardState(term=1, commit=1))
    with pytest.raises(InvariantViolation, match="went back"):
        c.on_persist(1, None, [], HardState(term=1, commit=0))
    c2 = checker()
    with pytest.raises(InvariantViolation, match="beyond its log"):
        c2.on_persist(1, None, [], HardState(term=1, commit=3))


def test_double_vote_and_term_going_back() -> None:
    c = checker()
    c.on_persist(1, None, [], HardState(term=2, vote=1))
    with pytest.raises(InvariantViolation, match="voted twice"):
        c.on_persist(1, None, [], HardState(term=2, vote=3))
    c2 = checker()
    c2.on_persist(1, None, [], HardState(term=2))
    with pytest.raises(InvariantViolation, match="term went back"):
        c2.on_persist(1, None, [], HardState(term=1))


def test_double_vote_across_a_restart() -> None:
    c = checker()
    c.on_persist(1, None, [], HardState(term=2, vote=2))
    c.on_crash(1)
    c.on_start(1, EMPTY, HardState(term=2), [])  # the vote was lost by storage
    with pytest.raises(InvariantViolation, match="voted twice"):
        c.on_persist(1, None, [], HardState(term=2, vote=3))


def persist_on_majority(c: InvariantChecker, *entries: Entry) -> None:
    for node in (1, 2):
        c.on_persist(node, None, entries, None)


def test_apply_gaps_and_different_commands() -> None:
    c = checker()
    persist_on_majority(c, e(1, 1, b"a"))
    c.on_apply(1, e(1, 1, b"a"))
    with pytest.raises(InvariantViolation, match="expected 2"):
        c.on_apply(1, e(3, 1, b"c"))
    with pytest.raises(InvariantViolation, match="state machine safety"):
        c.on_apply(2, e(1, 1, b"b"))


def test_snapshot_restoring_other_commands() -> None:
    c = checker()
    persist_on_majority(c, e(1, 1, b"a"))
    c.on_apply(1, e(1, 1, b"a"))
    with pytest.raises(InvariantViolation, match="state machine safety"):
        c.on_restore(2, 1, [b"b"])


def test_applying_an_entry_a_majority_does_not_hold_durably() -> None:
    """Applied means committed: the entry is on a majority's disks (a snapshot counts)."""
    c = checker()
    c.on_persist(1, None, [e(1, 1, b"a")], None)
    with pytest.raises(InvariantViolation, match=r"only 1 of the voters \(1, 2, 3\) hold durably"):
        c.on_apply(1, e(1, 1, b"a"))
    c = checker()
    c.on_persist(1, None, [e(1, 1, b"a"), e(2, 1, b"b")], None)
    c.on_persist(2, None, [e(1, 1, b"a"), e(2, 1, b"b")], None)
    c.on_compact(2, snap(2, 1))
    c.on_apply(3, e(1, 1, b"a"))
    c.on_apply(3, e(2, 1, b"b"))


def test_snapshot_of_an_entry_no_log_had() -> None:
    c = checker()
    with pytest.raises(InvariantViolation, match="no log had"):
        c.on_persist(1, SnapshotMetadata(index=5, term=2), [], None)


def test_violation_names_seed_and_time() -> None:
    c = InvariantChecker(seed=1234, clock=lambda: 2_500_000, voters=(1, 2, 3))
    assert "seed 1234" in str(c.fail("x"))
    assert "t=2.500000s" in str(c.fail("x"))


def test_recording_app_round_trips_its_snapshot() -> None:
    app = RecordingApp()
    app.apply(e(1, 1))
    app.apply(e(2, 3, b"cmd"))
    copy = RecordingApp()
    copy.restore(app.snapshot())
    assert copy.commands() == (b"", b"cmd")
    assert copy.applied_term == 3
    assert copy.get(2) == b"cmd"
    assert copy.get(3) is None
    with pytest.raises(ApplyOrderError):
        copy.apply(e(4, 3))
    with pytest.raises(SnapshotFormatError):
        copy.restore(b"\xff\xff")
    copy.restore(b"")
    assert copy.applied_index == 0


def test_stale_read_is_caught() -> None:
    c = checker()
    c.on_persist(1, None, [e(1, 1, b"a")], HardState(term=1, commit=1))
    c.on_read_request(b"r1")
    with pytest.raises(InvariantViolation, match="stale read"):
        c.on_read_state(2, 0, b"r1")
    c.on_read_request(b"r2")
    c.on_read_state(1, 1, b"r2")
    with pytest.raises(InvariantViolation, match="nobody asked"):
        c.on_read_state(1, 1, b"r2")


def test_only_voters_of_the_configuration_in_their_log_campaign_or_lead() -> None:
    """A learner (node 4) never campaigns or asks for votes; a node whose log removed it
    (node 1) may campaign while that removal is uncommitted (thesis 4.2.2), never after; a
    voter does both."""
    c = checker()
    c.on_start(4, EMPTY, HardState(), [])
    grown = conf(1, 1, (2, 3), (4,))
    for node in (1, 2, 3, 4):
        c.on_persist(node, None, [grown], None)
    with pytest.raises(InvariantViolation, match="became candidate in term 2, but its log"):
        c.on_role(4, Role.CANDIDATE, 2)
    with pytest.raises(InvariantViolation, match="asked for votes"):
        c.on_vote_request(4, 2)
    c.on_vote_request(1, 2)  # its removal is not committed yet
    with pytest.raises(InvariantViolation, match="no voter"):
        elect(c, 1, 2, 1, 2, 3, commit=1)  # now it is
    c.on_vote_request(2, 3)
    c.on_role(2, Role.PRE_CANDIDATE, 2)
    elect(c, 2, 3, 2, 3, commit=1)


def test_a_leader_needs_a_majority_of_its_voters_learners_votes_do_not_count() -> None:
    c = checker(5)
    for node in range(1, 6):
        c.on_persist(node, None, [conf(1, 1, (1, 2, 3), (4, 5))], None)
    with pytest.raises(InvariantViolation, match=r"votes of \[1\] only"):
        elect(c, 1, 2, 1, 4, 5)
    elect(c, 2, 3, 2, 3)


def test_a_leader_holds_at_most_one_uncommitted_change() -> None:
    """Thesis 4.1: the second change may be proposed only once the first committed."""
    c = checker()
    elect(c, 1, 1, 1, 2)
    c.on_persist(1, None, [e(1, 1), conf(2, 1, (1, 2, 3), (4,))], None)
    c.on_persist(2, None, [e(1, 1), conf(2, 1, (1, 2, 3), (4,))], None)
    c.on_persist(1, None, [], HardState(term=1, vote=1, commit=2))
    c.on_persist(1, None, [conf(3, 1, (1, 2, 3, 4))], None)  # the first committed: fine
    with pytest.raises(InvariantViolation, match=r"2 uncommitted conf entries \(at \[3, 4\]\)"):
        c.on_persist(1, None, [conf(4, 1, (1, 2, 3, 4), (5,))], None)


def test_durability_counts_the_voters_of_a_configuration_that_may_have_committed() -> None:
    """Three nodes of five hold index 2, but two of them are learners: not committed. From
    four voters to five (a learner promoted at index 3), index 2 may commit on three of the
    five, only two of the four it had: the first change after the entry counts too."""
    c = checker(5)
    log = [conf(1, 1, (1, 2, 3), (4, 5)), e(2, 1, b"x")]
    for node in (1, 4, 5):
        c.on_persist(node, None, log, None)
    with pytest.raises(InvariantViolation, match=r"only 1 of the voters \(1, 2, 3\)"):
        c.on_apply(1, e(1, 1))
    c = checker(5)
    log = [conf(1, 1, (1, 2, 3, 4), (5,)), e(2, 1, b"x"), conf(3, 1, (1, 2, 3, 4, 5))]
    for node in (1, 2):
        c.on_persist(node, None, log[:2], None)
    with pytest.raises(InvariantViolation, match="durability"):
        c.on_apply(1, log[0])  # two of four, and no change after it yet
    for node in (1, 2, 5):
        c.on_persist(node, None, log, None)
    c.on_apply(3, log[0])
    c.on_apply(3, log[1])


def test_a_snapshot_carries_the_configuration_at_its_index() -> None:
    c = checker()
    log = [conf(1, 1, (1, 2, 3), (4,)), e(2, 1, b"x")]
    for node in (1, 2):
        c.on_persist(node, None, log, HardState(term=1, commit=2))
    with pytest.raises(InvariantViolation, match="snapshot at 2 carries"):
        c.on_compact(1, snap(2, 1))  # the birth configuration, not the one at index 2
    grown = SnapshotMetadata(index=2, term=1)
    grown.conf_state.CopyFrom(Membership((1, 2, 3), (4,), next_id=6).conf_state())
    c.on_compact(2, grown)


def test_a_node_configuration_must_be_the_one_its_log_holds() -> None:
    """The core's configuration in force, and at its applied index, against the log's; a
    node that joined knows none until it holds the entry that added it."""
    c = checker()
    c.on_start(4, EMPTY, HardState(), [])
    birth = Membership((1, 2, 3), next_id=4)
    nothing = Membership(())
    c.on_configuration(1, birth, 0, birth)
    c.on_configuration(4, nothing, 0, nothing)
    grown = Membership((1, 2, 3), (4,), next_id=6)
    for node in (1, 4):
        c.on_persist(node, None, [e(1, 1), conf(2, 1, (1, 2, 3), (4,))], None)
    c.on_configuration(1, grown, 1, birth)
    with pytest.raises(InvariantViolation, match="configuration in force is"):
        c.on_configuration(4, nothing, 0, nothing)  # it holds the entry that added it
    with pytest.raises(InvariantViolation, match="at applied index 2"):
        c.on_configuration(1, grown, 2, birth)


def test_a_restart_without_entries_it_had_persisted_is_caught() -> None:
    """What a runner reported persisted must survive a crash: the restarted log holds it,
    more is fine (a snapshot commit may have made later writes durable too)."""
    c = checker()
    c.on_persist(1, None, [e(1, 1, b"a"), e(2, 1, b"b")], None)
    c.on_crash(1)
    c.on_start(1, EMPTY, HardState(), [e(1, 1, b"a"), e(2, 1, b"b"), e(3, 1, b"c")])
    c.on_crash(1)
    with pytest.raises(InvariantViolation, match="restarted without the log it had persisted"):
        c.on_start(1, EMPTY, HardState(), [e(1, 1, b"a"), e(2, 1, b"b")])
