"""The membership as a clerk keeps it: member lists, the server table, and when to learn.

Theory of operation
-------------------
No I/O and no clock here (times are passed in), so every decision is unit-tested alone;
:class:`clerk.connections.Connections` does the asking.

Any member answers ``nodeAdmin.MemberList`` with the configuration in force on it and the leader
it knows (:func:`parse_member_list` reads the reply). :func:`newer` picks which of several
answers to believe: the leader's view is the newest (a change takes effect on the leader first,
thesis 4.1), else the one made by the later conf entry.

:class:`ServerTable` is where a clerk's servers are: each is named by its node index ``i``
(``node<i>``, Raft id ``i + 1``), the name leader hints and member lists use, so the table can
grow past the original list and have gaps where members were removed. It starts from the
original list (a test.conf, whose ``node<i>`` is index ``i``) and :meth:`ServerTable.adopt`
replaces it with a member list: learned members come in with their addresses, members the list
no longer names leave. Only voters are asked in rotation (a learner never leads); learners keep
their addresses, for a stale read asked of one. The original servers stay as a last resort for
discovery only (:meth:`ServerTable.discovery`): if every member ever learned is gone, one of them
may still answer. A list naming no address is ignored, so the table always knows one server.

:class:`LearnSchedule` says when to ask: for a cause (a leader hint naming a server the clerk
does not ask, a whole round of failed asks) at once, but not again within ``min_gap_s``; and
otherwise every ``every_s``, so the operations themselves never wait for a member list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kvapi.admin_pb2 import MemberListReply
from kvapi.config import ConfigError, parse_address
from kvapi.nodes import node_name

__all__ = [
    "Address",
    "LearnSchedule",
    "Member",
    "MemberList",
    "ServerTable",
    "newer",
    "parse_member_list",
]

Address = tuple[str, int]


@dataclass(frozen=True)
class Member:
    """One member: its Raft id (``node<raft_id - 1>``), address and kind."""

    raft_id: int
    address: Address | None  # None: the member's address could not be read
    learner: bool

    @property
    def name(self) -> str:
        """``node<i>``, as every message and argument names it."""
        return node_name(self.raft_id)


@dataclass(frozen=True)
class MemberList:
    """The configuration one member had in force, and the leader it knew (0: none)."""

    leader: int
    members: tuple[Member, ...]
    index: int  # the conf entry that made it (0: the cluster's birth)

    def find(self, raft_id: int) -> Member | None:
        """The member with ``raft_id``, if there is one."""
        return next((m for m in self.members if m.raft_id == raft_id), None)

    @property
    def leader_address(self) -> Address | None:
        """Where the leader it names is, if it names one with a readable address."""
        leader = self.find(self.leader)
        return None if leader is None else leader.address


def parse_member_list(reply: MemberListReply) -> MemberList:
    """The :class:`MemberList` a ``MemberList`` reply carries."""
    members = []
    for info in reply.Members:
        try:
            address: Address | None = parse_address(info.Address.decode(errors="replace"))
        except ConfigError:
            address = None
        members.append(Member(info.Id, address, info.Learner))
    return MemberList(reply.Leader, tuple(members), reply.Index)


def newer(a: MemberList | None, b: MemberList) -> MemberList:
    """The later of two member lists: made by the later conf entry; at a tie the one that
    names a leader."""
    if a is None or (b.index, b.leader != 0) > (a.index, a.leader != 0):
        return b
    return a


class ServerTable:
    """The servers a clerk knows, by node index (Raft id - 1): where each is, which are asked.

    Invariants: :attr:`rotation` is never empty, and every server in it has an address.
    :attr:`version` grows by one at every change, for the clerks that copy the rotation.
    """

    def __init__(self, seeds: Sequence[Address]) -> None:
        """``seeds``: the original list, ``seeds[i]`` taken to be ``node<i>`` until the
        cluster says otherwise."""
        if not seeds:
            raise ValueError("a clerk needs at least one server address")
        self.seeds = tuple(seeds)
        self.addresses: dict[int, Address] = dict(enumerate(self.seeds))
        """Every known server's address, learners' included."""
        self.rotation: tuple[int, ...] = tuple(range(len(self.seeds)))
        """The servers an operation asks, ascending."""
        self.leader: int | None = None
        """The leader the last adopted member list named, if it is in the rotation."""
        self.version = 0

    def adopt(self, listed: MemberList) -> bool:
        """Take ``listed`` as the membership; whether anything changed. A list naming no
        address is ignored: the table keeps what it knows rather than know nothing."""
        addresses: dict[int, Address] = {}
        voters: list[int] = []
        for member in listed.members:
            if member.address is not None and member.raft_id >= 1:
                addresses[member.raft_id - 1] = member.address
                if not member.learner:
                    voters.append(member.raft_id - 1)
        if not addresses:
            return False
        # Voters only: a learner cannot lead. A list of learners alone (no real configuration)
        # still leaves something to ask.
        rotation = tuple(sorted(voters or addresses))
        leader = listed.leader - 1 if listed.leader - 1 in rotation else None
        if (addresses, rotation, leader) == (self.addresses, self.rotation, self.leader):
            return False
        self.addresses, self.rotation, self.leader = addresses, rotation, leader
        self.version += 1
        return True

    def discovery(self) -> list[Address]:
        """Where to ask for the member list: every known server, then the original servers
        that are no members any more (a last resort, should every member learned be gone)."""
        found: list[Address] = []
        for address in [*self.addresses.values(), *self.seeds]:
            if address not in found:
                found.append(address)
        return found


class LearnSchedule:
    """When to ask the cluster for its members; times are seconds on the caller's clock."""

    def __init__(self, every_s: float, min_gap_s: float) -> None:
        if not 0 < min_gap_s <= every_s:
            raise ValueError(f"need 0 < min_gap_s <= every_s, not {min_gap_s} and {every_s}")
        self.every_s = every_s
        self.min_gap_s = min_gap_s
        self._last: float | None = None  # when the last learning started
        self._first_use: float | None = None

    def routine(self, now: float) -> bool:
        """Whether a routine refresh is due: ``every_s`` after the last learning, or after
        the first time this was asked when there was none."""
        if self._first_use is None:
            self._first_use = now
        since = self._last if self._last is not None else self._first_use
        return now - since >= self.every_s

    def for_cause(self, now: float) -> bool:
        """Whether learning for a cause may start now: not within ``min_gap_s`` of the last,
        so a hint that learning cannot resolve does not set off a learning per ask."""
        return self._last is None or now - self._last >= self.min_gap_s

    def started(self, now: float) -> None:
        """Record that learning started at ``now``."""
        self._last = now
