"""The cluster's membership as a client sees it: list the members, change them, move the leader.

Theory of operation
-------------------
Any member answers ``nodeAdmin.MemberList`` with the configuration in force on it and the leader
it knows; :meth:`MembershipClient.members` asks the servers it knows in turn and, when the answer
names a leader it can reach, asks that leader too, whose view is the newest (a change takes
effect on the leader first, thesis 4.1). Every member's address comes with the list, so a client
that starts from an old ``test.conf`` still finds the nodes added since.

A change goes to the leader: a server that is not answers ``ErrWrongLeader`` with the leader's
id, which the member list maps to an address. Unreachable servers, wrong leaders and a leader
still busy with its first entry are asked again with backoff until the deadline, then
:class:`~clerk.errors.OperationTimeoutError`. A change the leader refuses raises
:class:`~clerk.errors.ConfChangeRefusedError` at once (nothing changed), unless an earlier ask
of the same change went unanswered: it may have been made (a removed leader stops serving as
soon as its removal is applied, its answer perhaps unsent), so the member list decides whether
it was. The list shows a change from its append on, committed or not, so a change it shows that
the leader refuses as not possible yet (another change pending: this one) is asked again until
the refusal says it is made. A change still unanswered at the deadline has an unknown outcome:
list the members to see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from clerk.connections import Servers, resolve_servers
from clerk.errors import ConfChangeRefusedError, OperationTimeoutError
from clerk.members import Address, Member, MemberList, parse_member_list
from kvapi.admin_pb2 import (
    MemberAddRequest,
    MemberChangeReply,
    MemberIdRequest,
    MemberListRequest,
)
from kvapi.codes import Err
from kvapi.config import ConfigError, format_address, parse_address
from kvapi.nodes import node_name
from kvapi.stubs import NodeAdmin
from rpc import Rpc, RpcChannel, RpcError

__all__ = ["Member", "MemberList", "MembershipClient"]

_BACKOFF_S = (0.02, 0.05, 0.1, 0.2, 0.5)

Req = TypeVar("Req", bound=Message)
Rep = TypeVar("Rep", bound=Message)


class MembershipClient:
    """Asks a cluster about and for membership changes; use on one event loop, then close.

    ``servers``: where to start looking (a test.conf or addresses); ``timeout`` bounds every
    operation, ``rpc_timeout`` one ask of one server."""

    def __init__(self, servers: Servers, *, timeout: float = 10.0, rpc_timeout: float = 1.0):
        self._known: list[Address] = resolve_servers(servers)
        self._channels: dict[Address, RpcChannel] = {}
        self.timeout = timeout
        self.rpc_timeout = rpc_timeout
        self._leader: Address | None = None

    async def close(self) -> None:
        """Close every channel this client opened."""
        await asyncio.gather(*(c.close() for c in self._channels.values()))
        self._channels.clear()

    async def __aenter__(self) -> MembershipClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- reading -------------------------------------------------------------------------------

    async def members(self) -> MemberList:
        """The members, as the leader has them when it can be reached (else as the first
        member that answers has them); OperationTimeoutError when no server answers."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        return await self._members(deadline)

    async def _members(self, deadline: float) -> MemberList:
        failures: list[str] = []
        round_ = 0
        while True:
            for address in self._candidates():
                reply = await self._ask(
                    NodeAdmin.MemberList, address, MemberListRequest(), deadline, failures
                )
                if reply is None:
                    continue
                listed = parse_member_list(reply)
                self._learn(listed)
                leader = listed.find(listed.leader)
                if leader is None or leader.address in (None, address):
                    return listed
                from_leader = await self._ask(
                    NodeAdmin.MemberList, leader.address, MemberListRequest(), deadline, failures
                )
                if from_leader is not None:
                    self._leader = leader.address
                    return parse_member_list(from_leader)
                return listed
            await self._pause(round_, deadline, failures, "list the members")
            round_ += 1

    # -- changing ------------------------------------------------------------------------------

    async def add_learner(self, address: str) -> int:
        """Add a learner at ``address`` (HOST:PORT); returns its Raft id. ValueError for an
        address that is none."""
        try:
            wanted = parse_address(address)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

        def added(listed: MemberList) -> int | None:
            return next((m.raft_id for m in listed.members if m.address == wanted), None)

        request = MemberAddRequest(Address=address.encode())
        return await self._change(NodeAdmin.MemberAdd, request, f"add {address}", added)

    async def promote(self, raft_id: int) -> None:
        """Make learner ``raft_id`` a voter (refused, ``not_yet``, until it has caught up)."""

        def promoted(listed: MemberList) -> int | None:
            member = listed.find(raft_id)
            return raft_id if member is not None and not member.learner else None

        request = MemberIdRequest(Id=raft_id)
        await self._change(
            NodeAdmin.MemberPromote, request, f"promote {node_name(raft_id)}", promoted
        )

    async def remove(self, raft_id: int) -> None:
        """Remove member ``raft_id``."""

        def removed(listed: MemberList) -> int | None:
            return raft_id if listed.find(raft_id) is None else None

        request = MemberIdRequest(Id=raft_id)
        await self._change(NodeAdmin.MemberRemove, request, f"remove {node_name(raft_id)}", removed)

    async def transfer_leader(self, raft_id: int) -> None:
        """Make voter ``raft_id`` the leader."""

        def leads(listed: MemberList) -> int | None:
            return raft_id if listed.leader == raft_id else None

        what = f"move the leadership to {node_name(raft_id)}"
        await self._change(NodeAdmin.TransferLeader, MemberIdRequest(Id=raft_id), what, leads)

    async def _change(
        self,
        rpc: Rpc[Req, MemberChangeReply],
        request: Req,
        what: str,
        done: Callable[[MemberList], int | None],
    ) -> int:
        """Ask the leader for one change until it is answered; the node it concerns.
        ``done(members)`` tells from a member list whether the change is in force (and names
        the node), for a refusal that follows an unanswered ask."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        failures: list[str] = []
        unknown = False  # a proposal may have been made: a timeout's outcome is then unknown
        round_ = 0

        async def members() -> MemberList:
            try:
                return await self._members(deadline)
            except OperationTimeoutError:  # the deadline passed while listing
                raise self._timed_out(what, failures, unknown) from None

        while True:
            leader = self._leader
            if leader is None:
                listed = await members()
                found = listed.find(listed.leader)
                leader = found.address if found is not None else None
            if leader is not None:
                reply = await self._ask(rpc, leader, request, deadline, failures)
                if reply is None:
                    unknown = True
                    self._leader = None  # gone, perhaps: look again
                else:
                    err = Err.from_wire(reply.Err)
                    if err is Err.OK:
                        return reply.Id
                    why = reply.Message.decode(errors="replace")
                    if err in (Err.CONF_CHANGE_REFUSED, Err.CONF_CHANGE_NOT_YET):
                        settled = done(await members()) if unknown else None
                        if settled is None:
                            raise ConfChangeRefusedError(
                                why, not_yet=err is Err.CONF_CHANGE_NOT_YET
                            )
                        if err is Err.CONF_CHANGE_REFUSED:
                            return settled
                        # In force yet refused as not possible yet: it is the change pending,
                        # uncommitted (a member list shows a change from its append on). Ask
                        # the leader again until it commits.
                    else:
                        unknown = unknown or err is Err.TIMEOUT
                        self._leader = None  # not the leader: look again
                    failures.append(f"{format_address(leader)}: {why or err}")
            await self._pause(round_, deadline, failures, what, unknown=unknown)
            round_ += 1

    # -- plumbing ------------------------------------------------------------------------------

    def _candidates(self) -> list[Address]:
        first = [self._leader] if self._leader is not None else []
        return first + [a for a in self._known if a != self._leader]

    def _learn(self, listed: MemberList) -> None:
        for member in listed.members:
            if member.address is not None and member.address not in self._known:
                self._known.append(member.address)

    async def _ask(
        self,
        rpc: Rpc[Req, Rep],
        address: Address,
        request: Req,
        deadline: float,
        failures: list[str],
    ) -> Rep | None:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return None
        channel = self._channels.get(address)
        if channel is None:
            channel = RpcChannel(*address, connect_timeout=min(self.rpc_timeout, 0.5))
            self._channels[address] = channel
        try:
            return await rpc.call(channel, request, timeout=min(self.rpc_timeout, remaining))
        except RpcError as exc:
            failures.append(f"{format_address(address)}: {exc}")
            return None

    async def _pause(
        self, round_: int, deadline: float, failures: list[str], what: str, *, unknown: bool = False
    ) -> None:
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise self._timed_out(what, failures, unknown)
        await asyncio.sleep(min(_BACKOFF_S[min(round_, len(_BACKOFF_S) - 1)], remaining))

    def _timed_out(self, what: str, failures: list[str], unknown: bool) -> OperationTimeoutError:
        last = failures[-1] if failures else "no server was asked"
        outcome = " (its outcome is unknown: list the members to see)" if unknown else ""
        return OperationTimeoutError(
            f"could not {what} within {self.timeout:g} s{outcome}; last failure: {last}",
            outcome_unknown=unknown,
        )
