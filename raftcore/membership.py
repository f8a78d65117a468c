"""Cluster membership as a value, and the log of its changes that a node keeps.

Theory of operation
-------------------
Membership changes one server at a time (thesis 4.1): add a learner, promote a learner to voter,
remove a member. Any two majorities of configurations that differ by one voter overlap, so no
joint consensus is needed, provided at most one change is uncommitted at a time and a new leader
commits an entry of its own term before proposing one (the rule the raft-dev 2015 fix added; the
leader side enforces both, ``raftcore.leader``). Adding every server as a learner first (thesis
4.2.1) keeps a node that is not yet up, or still catching up, from costing the cluster its
quorum: a learner receives the log but never votes and never counts for a quorum.

A configuration takes effect on a node as soon as its entry is in that node's log, committed or
not (thesis 4.1): the configuration in force is that of the last ENTRY_CONF_CHANGE in the log, or,
when the log holds none, the one its snapshot carries. :class:`MembershipLog` keeps exactly that:
the configuration the snapshot (or the cluster's birth) gave, and one record per conf entry in the
log above it, dropped again when a follower's log is cut back over it.

Every ConfChange carries the whole configuration that results, the members' addresses included,
so a node that joins and sees nothing but the log from the entry that added it on knows every
peer; and ids are never reused (``next_id``), so a removed node that comes back cannot pass for a
new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from raftcore.errors import RaftError
from raftcore.raftpb_pb2 import (
    CONF_ADD_LEARNER,
    CONF_FORCE,
    CONF_PROMOTE,
    CONF_REMOVE,
    ENTRY_CONF_CHANGE,
    ConfChange,
    ConfState,
    Entry,
    Member,
)
from raftcore.storage import Storage

__all__ = [
    "ConfChangeError",
    "Membership",
    "MembershipLog",
    "conf_change_of",
    "forced_change",
    "make_change",
]


class ConfChangeError(RaftError):
    """The leader refused a membership change; :meth:`explain` says why in a line.

    ``reason`` may name the node concerned as ``{node}``: the core knows ids only, and the
    runner names nodes the way its users do. ``retryable`` is True when the same change may
    succeed shortly without anyone acting (a change still pending, a leader that has not
    committed an entry of its term yet, a learner still catching up), False when it never will
    (an unknown node, the last voter, ...).
    """

    def __init__(self, reason: str, node_id: int = 0, *, retryable: bool = False) -> None:
        self.reason = reason
        self.node_id = node_id
        self.retryable = retryable
        super().__init__(self.explain(lambda i: f"Raft id {i}"))

    def explain(self, name: Callable[[int], str]) -> str:
        """The reason, with the node named by ``name(node_id)``."""
        return self.reason.replace("{node}", name(self.node_id) if self.node_id else "?")


@dataclass(frozen=True)
class Membership:
    """One configuration: voters, learners, every member's address, the next unused id."""

    voters: tuple[int, ...]
    learners: tuple[int, ...] = ()
    addresses: Mapping[int, str] = field(default_factory=dict)
    next_id: int = 0

    @classmethod
    def of(cls, cs: ConfState) -> Membership:
        """The configuration a ConfState describes."""
        voters = tuple(sorted(cs.voters))
        learners = tuple(sorted(cs.learners))
        addresses = {m.id: m.address for m in cs.members}
        used = max((*voters, *learners, *addresses), default=0)
        return cls(voters, learners, addresses, max(cs.next_id, used + 1))

    @classmethod
    def birth(cls, voters: Iterable[int]) -> Membership:
        """A new cluster's configuration: ``voters``, no learners, no address known yet."""
        ordered = tuple(sorted(voters))
        return cls(ordered, next_id=max(ordered, default=0) + 1)

    @property
    def members(self) -> tuple[int, ...]:
        """Voters and learners, in id order."""
        return tuple(sorted((*self.voters, *self.learners)))

    def is_member(self, node_id: int) -> bool:
        """Whether ``node_id`` is a voter or a learner here."""
        return node_id in self.voters or node_id in self.learners

    def was_removed(self, node_id: int) -> bool:
        """Whether ``node_id`` was once a member of this cluster and is no more."""
        return 0 < node_id < self.next_id and not self.is_member(node_id)

    def conf_state(self) -> ConfState:
        """This configuration as a ConfState (for snapshots and conf entries)."""
        return ConfState(
            voters=list(self.voters),
            learners=list(self.learners),
            members=[Member(id=i, address=a) for i, a in sorted(self.addresses.items())],
            next_id=self.next_id,
        )

    # -- the changes ----------------------------------------------------------------------------

    def add_learner(self, address: str) -> tuple[Membership, int]:
        """Add a learner at ``address`` under the next unused id; returns the result and the id."""
        if not address:
            raise ConfChangeError("a new member needs an address (host:port)")
        for member, known in self.addresses.items():
            if known == address and self.is_member(member):
                raise ConfChangeError(f"{address} is already the address of {{node}}", member)
        new_id = self.next_id
        addresses = dict(self.addresses)
        addresses[new_id] = address
        learners = tuple(sorted((*self.learners, new_id)))
        return Membership(self.voters, learners, addresses, new_id + 1), new_id

    def promote(self, node_id: int) -> Membership:
        """Make learner ``node_id`` a voter."""
        if node_id in self.voters:
            raise ConfChangeError("{node} is already a voter", node_id)
        if node_id not in self.learners:
            raise ConfChangeError("{node} is not a learner of this cluster", node_id)
        learners = tuple(i for i in self.learners if i != node_id)
        voters = tuple(sorted((*self.voters, node_id)))
        return Membership(voters, learners, self.addresses, self.next_id)

    def remove(self, node_id: int) -> Membership:
        """Remove member ``node_id`` (a voter or a learner), never the last voter."""
        if not self.is_member(node_id):
            raise ConfChangeError("{node} is not a member of this cluster", node_id)
        if self.voters == (node_id,):
            raise ConfChangeError("{node} is the last voter: it cannot be removed", node_id)
        addresses = {i: a for i, a in self.addresses.items() if i != node_id}
        return Membership(
            tuple(i for i in self.voters if i != node_id),
            tuple(i for i in self.learners if i != node_id),
            addresses,
            self.next_id,
        )


def conf_change_of(entry: Entry) -> ConfChange | None:
    """The ConfChange an entry carries, or None for a normal entry."""
    if entry.type != ENTRY_CONF_CHANGE:
        return None
    change = ConfChange()
    change.ParseFromString(entry.data)
    return change


def forced_change(current: Membership, survivor: int, address: str) -> ConfChange:
    """The ConfChange that makes ``survivor`` the only member (quorum-loss recovery, etcd's
    ``--force-new-cluster``): every other member is dropped, ``next_id`` is kept so ids are
    still never reused."""
    result = Membership((survivor,), (), {survivor: address}, max(current.next_id, survivor + 1))
    change = ConfChange(type=CONF_FORCE, node_id=survivor, address=address)
    change.result.CopyFrom(result.conf_state())
    return change


def make_change(current: Membership, kind: int, node_id: int, address: str) -> ConfChange:
    """The ConfChange of one single-server change applied to ``current`` (ConfChangeError if
    the change makes no sense there); for CONF_ADD_LEARNER ``node_id`` is ignored and the
    change names the id it assigns."""
    if kind == CONF_ADD_LEARNER:
        result, node_id = current.add_learner(address)
    elif kind == CONF_PROMOTE:
        result = current.promote(node_id)
        address = current.addresses.get(node_id, "")
    elif kind == CONF_REMOVE:
        result = current.remove(node_id)
        address = current.addresses.get(node_id, "")
    else:
        raise ConfChangeError(f"conf change type {kind} cannot be proposed")
    change = ConfChange(type=kind, node_id=node_id, address=address)  # type: ignore[arg-type]
    change.result.CopyFrom(result.conf_state())
    return change


class MembershipLog:
    """The configuration in force on one node and the conf entries behind it (module doc)."""

    @classmethod
    def from_storage(cls, storage: Storage, birth_voters: Iterable[int]) -> MembershipLog:
        """The configurations ``storage`` holds: its snapshot's (or, where it names none, a new
        cluster of ``birth_voters``) and one per conf entry of its log."""
        _, conf_state = storage.initial_state()
        base = Membership.of(conf_state)
        if not base.members:
            base = Membership.birth(birth_voters)
        log = cls(base, storage.first_index() - 1)
        first, last = storage.first_index(), storage.last_index()
        if first <= last:
            log.append(storage.entries(first, last + 1))
        return log

    def __init__(self, base: Membership, base_index: int = 0) -> None:
        """``base``: the configuration as of ``base_index`` (the snapshot's, or the birth one)."""
        self._base = base
        self._base_index = base_index
        self._records: list[tuple[int, int, Membership]] = []  # (index, term, config), by index
        # Plain attributes, not properties: a follower reads latest_index on every append.
        #: The configuration in force: the last conf entry's, else the base.
        self.latest = base
        #: Index of the last conf entry in the log (the base's index when there is none).
        self.latest_index = base_index

    def _changed(self) -> None:
        if self._records:
            self.latest_index, _, self.latest = self._records[-1]
        else:
            self.latest, self.latest_index = self._base, self._base_index

    def has_change_in(self, lo: int, hi: int) -> bool:
        """Whether a conf entry of the log lies in ``lo .. hi`` (what an append carrying those
        entries must say: ``Message.carries_conf``)."""
        records = self._records
        return bool(records) and records[-1][0] >= lo and any(lo <= r[0] <= hi for r in records)

    def at(self, index: int) -> Membership:
        """The configuration in force once the log up to ``index`` was applied."""
        found = self._base
        for rec_index, _, membership in self._records:
            if rec_index > index:
                break
            found = membership
        return found

    def reset(self, base: Membership, base_index: int) -> None:
        """A snapshot replaced the log through ``base_index``: start over from its config."""
        self._base = base
        self._base_index = base_index
        self._records = []
        self._changed()

    def append(self, entries: Iterable[Entry]) -> bool:
        """Record the conf entries among ``entries`` (consecutive, in the log now: after
        :meth:`truncate` dropped what the log no longer holds); returns whether one was new."""
        found = False
        records = self._records
        for entry in entries:
            if entry.type == ENTRY_CONF_CHANGE:
                if records and records[-1][0] >= entry.index:
                    continue  # a resent entry, recorded already (truncate keeps only those)
                change = conf_change_of(entry)
                assert change is not None
                records.append((entry.index, entry.term, Membership.of(change.result)))
                found = True
        if found:
            self._changed()
        return found

    def truncate(self, still_holds: Callable[[int, int], bool], above: int) -> bool:
        """Forget the records above ``above`` whose entry the log no longer holds
        (``still_holds(index, term)`` False: a follower's log was cut back over it), and every
        record after such a one; returns whether any went."""
        records = self._records
        for pos, (index, term, _) in enumerate(records):
            if index > above and not still_holds(index, term):
                del records[pos:]
                self._changed()
                return True
        return False
