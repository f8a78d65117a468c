"""clerk.members: reading member lists, the server table by node index, and when to learn."""

from __future__ import annotations

import pytest

from clerk.members import LearnSchedule, Member, MemberList, ServerTable, newer, parse_member_list
from kvapi.admin_pb2 import MemberInfo, MemberListReply

A, B, C, D = (("127.0.0.1", port) for port in (7001, 7002, 7003, 7004))


def listing(leader: int, *members: Member, index: int = 9) -> MemberList:
    return MemberList(leader, members, index)


def voter(raft_id: int, address: tuple[str, int] | None) -> Member:
    return Member(raft_id, address, learner=False)


def test_a_reply_is_parsed_and_an_unreadable_address_is_none() -> None:
    reply = MemberListReply(
        Leader=4,
        Index=12,
        Members=[
            MemberInfo(Id=2, Address=b"127.0.0.1:7002"),
            MemberInfo(Id=4, Address=b"127.0.0.1:7004", Learner=True),
            MemberInfo(Id=5, Address=b"not an address"),
        ],
    )
    listed = parse_member_list(reply)
    assert listed == listing(4, voter(2, B), Member(4, D, learner=True), voter(5, None), index=12)
    assert listed.leader_address == D
    assert listed.find(5) is not None and listed.find(5).name == "node4"  # type: ignore[union-attr]
    assert listing(0, voter(2, B)).leader_address is None
    assert listing(5, voter(5, None)).leader_address is None


def test_newer_prefers_the_later_conf_entry_then_a_named_leader() -> None:
    old, new = listing(1, voter(1, A), index=3), listing(0, voter(1, A), index=7)
    assert newer(None, old) is old
    assert newer(old, new) is new
    assert newer(new, old) is new
    led = listing(2, voter(1, A), index=7)
    assert newer(new, led) is led
    assert newer(led, new) is led


def test_the_table_starts_from_the_original_list_by_index() -> None:
    table = ServerTable([A, B, C])
    assert table.addresses == {0: A, 1: B, 2: C}
    assert table.rotation == (0, 1, 2)
    assert (table.leader, table.version) == (None, 0)
    with pytest.raises(ValueError, match="at least one"):
        ServerTable([])


def test_adopting_adds_learned_members_and_drops_removed_ones() -> None:
    table = ServerTable([A, B, C])
    # node3 added (Raft id 4) and leading, node0 removed: ids past the list, with a gap.
    assert table.adopt(listing(4, voter(2, B), voter(3, C), voter(4, D)))
    assert table.addresses == {1: B, 2: C, 3: D}
    assert table.rotation == (1, 2, 3)
    assert (table.leader, table.version) == (3, 1)
    assert not table.adopt(listing(4, voter(2, B), voter(3, C), voter(4, D)))  # nothing new
    assert table.version == 1


def test_learners_have_addresses_but_are_not_asked() -> None:
    table = ServerTable([A, B])
    assert table.adopt(listing(1, voter(1, A), voter(2, B), Member(3, C, learner=True)))
    assert table.addresses == {0: A, 1: B, 2: C}
    assert table.rotation == (0, 1)
    assert table.leader == 0


def test_a_list_with_no_address_is_ignored_and_unreadable_members_are_skipped() -> None:
    table = ServerTable([A, B])
    assert not table.adopt(listing(1, voter(1, None), voter(2, None)))
    assert not table.adopt(listing(0))
    assert (table.addresses, table.version) == ({0: A, 1: B}, 0)
    assert table.adopt(listing(1, voter(1, None), voter(2, B)))
    assert table.addresses == {1: B}
    assert table.rotation == (1,)
    assert table.leader is None  # node0 leads, but the clerk cannot reach it


def test_discovery_asks_members_then_original_servers_no_longer_members() -> None:
    table = ServerTable([A, B, C])
    assert table.discovery() == [A, B, C]
    table.adopt(listing(4, voter(3, C), voter(4, D)))
    assert table.discovery() == [C, D, A, B]


def test_the_schedule_learns_for_a_cause_at_once_but_not_twice_within_the_gap() -> None:
    schedule = LearnSchedule(every_s=5.0, min_gap_s=0.5)
    assert schedule.for_cause(100.0)
    schedule.started(100.0)
    assert not schedule.for_cause(100.3)
    assert schedule.for_cause(100.5)


def test_the_routine_refresh_is_due_every_few_seconds_from_first_use() -> None:
    schedule = LearnSchedule(every_s=5.0, min_gap_s=0.5)
    assert not schedule.routine(10.0)  # the first use starts the clock
    assert not schedule.routine(14.9)
    assert schedule.routine(15.0)
    schedule.started(15.0)
    assert not schedule.routine(19.0)
    schedule.started(19.0)  # a learning for a cause counts too
    assert not schedule.routine(23.9)
    assert schedule.routine(24.0)
    with pytest.raises(ValueError, match="min_gap_s"):
        LearnSchedule(every_s=1.0, min_gap_s=2.0)
