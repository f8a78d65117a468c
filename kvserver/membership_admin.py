"""The membership half of ``nodeAdmin``: list the members, add, promote, remove, move the leader.

Theory of operation
-------------------
Every node answers ``MemberList`` with the configuration in force on it (the last one its log
holds) and the leader it knows, so a client that knows any live node finds every member and the
leader. The changes are made by the leader only: elsewhere they are answered ``ErrWrongLeader``
with the leader's id, as a write is. A change is proposed through
:meth:`Replica.propose_conf_change` and answered once it is applied on the leader (so
committed), or ``ErrTimeout`` when that takes longer than ``change_timeout`` or this node stops
leading first (its outcome is then unknown: list the members to see). A refusal is answered at
once, nothing proposed: ``ErrConfChangeNotYet`` when the same change may succeed later (another
change pending, a learner still catching up), ``ErrConfChangeRefused`` when it never will as
asked, each with its reason in one line naming nodes ``node<i>``.

``TransferLeader`` starts a leadership transfer (thesis 3.10) and answers once this node sees
the target lead, ``ErrTimeout`` if it does not within ``change_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kvapi.admin_pb2 import (
    MemberAddRequest,
    MemberChangeReply,
    MemberIdRequest,
    MemberInfo,
    MemberListReply,
    MemberListRequest,
)
from kvapi.codes import Err
from kvapi.config import ConfigError, parse_address
from kvapi.nodes import node_name
from kvserver.replica import Replica
from kvserver.service import FutureWaiter, Rejected
from raftcore import ConfChangeError, NotLeaderError, ProposalDroppedError
from raftcore.raftpb_pb2 import CONF_ADD_LEARNER, CONF_PROMOTE, CONF_REMOVE
from rpc import RpcController

__all__ = ["DEFAULT_CHANGE_TIMEOUT", "MembershipAdmin"]

DEFAULT_CHANGE_TIMEOUT = 5.0
_TRANSFER_POLL_S = 0.01


class MembershipAdmin:
    """The handlers of nodeAdmin's membership methods for one node.

    ``address_of(id)`` is where the node reaches a member (its address book, which falls back
    to test.conf for data written before addresses were kept); ``wakeup`` tells the runner there
    is Raft work to process."""

    def __init__(
        self,
        replica: Replica,
        address_of: Callable[[int], str],
        wakeup: Callable[[], None],
        *,
        change_timeout: float = DEFAULT_CHANGE_TIMEOUT,
    ) -> None:
        self._replica = replica
        self._address_of = address_of
        self._wakeup = wakeup
        self._timeout = change_timeout

    def member_list(self, request: MemberListRequest, controller: RpcController) -> MemberListReply:
        """The configuration in force here, and the leader this node knows."""
        replica = self._replica
        membership = replica.membership
        reply = MemberListReply(Err=Err.OK.wire, Leader=replica.leader_hint)
        for member in membership.members:
            reply.Members.append(
                MemberInfo(
                    Id=member,
                    Address=self._address_of(member).encode(),
                    Learner=member in membership.learners,
                )
            )
        reply.Index = replica.membership_index
        return reply

    async def member_add(
        self, request: MemberAddRequest, controller: RpcController
    ) -> MemberChangeReply:
        """Add a learner at ``Address`` under the next unused id."""
        address = request.Address.decode(errors="replace")
        try:
            parse_address(address)
        except ConfigError as exc:
            return self._refused(Err.CONF_CHANGE_REFUSED, str(exc))
        return await self._change(CONF_ADD_LEARNER, 0, address)

    async def member_promote(
        self, request: MemberIdRequest, controller: RpcController
    ) -> MemberChangeReply:
        """Make learner ``Id`` a voter, once it has caught up."""
        return await self._change(CONF_PROMOTE, request.Id, "")

    async def member_remove(
        self, request: MemberIdRequest, controller: RpcController
    ) -> MemberChangeReply:
        """Remove member ``Id`` (the leader too: it steps down once the change commits)."""
        return await self._change(CONF_REMOVE, request.Id, "")

    async def transfer_leader(
        self, request: MemberIdRequest, controller: RpcController
    ) -> MemberChangeReply:
        """Hand leadership to voter ``Id``; answered once this node sees it lead."""
        replica = self._replica
        target = request.Id
        if replica.leader_hint == target:
            return MemberChangeReply(Err=Err.OK.wire, Leader=target, Id=target)
        try:
            replica.transfer_leadership(target)
        except NotLeaderError:
            return self._wrong_leader()
        except ValueError:
            why = f"{_name(target)} is not another voter of this cluster"
            return self._refused(Err.CONF_CHANGE_REFUSED, why, target)
        self._wakeup()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while loop.time() < deadline:
            await asyncio.sleep(_TRANSFER_POLL_S)
            if replica.leader_hint == target:
                return MemberChangeReply(Err=Err.OK.wire, Leader=target, Id=target)
        return MemberChangeReply(Err=Err.TIMEOUT.wire, Leader=replica.leader_hint, Id=target)

    async def _change(self, kind: int, node_id: int, address: str) -> MemberChangeReply:
        replica = self._replica
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            node_id = replica.propose_conf_change(kind, node_id, address, FutureWaiter(future))
        except (NotLeaderError, ProposalDroppedError):
            return self._wrong_leader()
        except ConfChangeError as exc:
            code = Err.CONF_CHANGE_NOT_YET if exc.retryable else Err.CONF_CHANGE_REFUSED
            return self._refused(code, exc.explain(_name), exc.node_id or node_id)
        self._wakeup()
        try:
            await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            return MemberChangeReply(Err=Err.TIMEOUT.wire, Leader=replica.leader_hint, Id=node_id)
        except Rejected as exc:
            # Proposed, then this node stopped leading: the entry may still commit under the
            # next leader, so the outcome is unknown (ErrWrongLeader would say "not made").
            err = Err.TIMEOUT.wire if exc.err == Err.WRONG_LEADER else exc.err.encode()
            return MemberChangeReply(Err=err, Leader=replica.leader_hint, Id=node_id)
        return MemberChangeReply(Err=Err.OK.wire, Leader=replica.leader_hint, Id=node_id)

    def _wrong_leader(self) -> MemberChangeReply:
        return MemberChangeReply(Err=Err.WRONG_LEADER.wire, Leader=self._replica.leader_hint)

    def _refused(self, code: Err, why: str, node_id: int = 0) -> MemberChangeReply:
        return MemberChangeReply(
            Err=code.wire, Leader=self._replica.leader_hint, Id=node_id, Message=why.encode()
        )


def _name(raft_id: int) -> str:
    return node_name(raft_id) if raft_id > 0 else "no node"
