"""clerk.admin.MembershipClient against a scripted leader over real RPC: a change whose first ask
went unanswered is reported as made only once it has committed.

The leader's member list is the configuration in force, which includes a change as soon as it is
appended (thesis 4.1), committed or not. While the change is uncommitted, asking for it again is
refused as "another change pending"; once committed, as "already the address of ...".
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clerk.admin import MembershipClient
from clerk.errors import OperationTimeoutError
from kvapi.admin_pb2 import (
    MemberAddRequest,
    MemberChangeReply,
    MemberInfo,
    MemberListReply,
    MemberListRequest,
)
from kvapi.codes import Err
from kvapi.stubs import NodeAdmin
from rpc import RpcController, RpcProvider
from tests.clerk.clerk_testkit import run

LEARNER = "127.0.0.1:7999"
PENDING = "another membership change is still pending (not committed yet)"


class ScriptedLeader:
    """Raft id 1, leading alone; the first MemberAdd is appended and never answered."""

    def __init__(self) -> None:
        self.address = ""
        self.appended = False
        self.committed = False

    async def member_list(self, request: MemberListRequest, controller: RpcController) -> Any:
        reply = MemberListReply(Err=Err.OK.wire, Leader=1, Index=2 if self.appended else 0)
        reply.Members.append(MemberInfo(Id=1, Address=self.address.encode()))
        if self.appended:
            reply.Members.append(MemberInfo(Id=2, Address=LEARNER.encode(), Learner=True))
        return reply

    async def member_add(self, request: MemberAddRequest, controller: RpcController) -> Any:
        if not self.appended:
            self.appended = True
            await asyncio.sleep(60)  # waiting for a commit: the asker's deadline ends this
        if not self.committed:
            return MemberChangeReply(
                Err=Err.CONF_CHANGE_NOT_YET.wire, Leader=1, Message=PENDING.encode()
            )
        why = f"{LEARNER} is already the address of node1"
        return MemberChangeReply(
            Err=Err.CONF_CHANGE_REFUSED.wire, Leader=1, Id=2, Message=why.encode()
        )

    def unused(self, request: Any, controller: RpcController) -> Any:
        raise NotImplementedError("not part of the script")


async def serve(leader: ScriptedLeader) -> RpcProvider:
    provider = RpcProvider()
    provider.register(
        NodeAdmin.SERVICE,
        {
            "Status": leader.unused,
            "MemberList": leader.member_list,
            "MemberAdd": leader.member_add,
            "MemberPromote": leader.unused,
            "MemberRemove": leader.unused,
            "TransferLeader": leader.unused,
        },
    )
    host, port = await provider.start("127.0.0.1", 0)
    leader.address = f"{host}:{port}"
    return provider


def test_a_change_in_force_but_not_committed_is_not_reported_as_made() -> None:
    async def main() -> None:
        leader = ScriptedLeader()
        provider = await serve(leader)
        try:
            host, port = leader.address.rsplit(":", 1)
            async with MembershipClient([(host, int(port))], timeout=1.5, rpc_timeout=0.2) as c:
                with pytest.raises(OperationTimeoutError, match="outcome is unknown") as caught:
                    await c.add_learner(LEARNER)
            assert caught.value.outcome_unknown
            assert PENDING in str(caught.value)
        finally:
            await provider.close(grace=0.2)

    run(main())


def test_a_change_whose_first_ask_went_unanswered_is_reported_once_committed() -> None:
    async def main() -> None:
        leader = ScriptedLeader()
        provider = await serve(leader)
        try:
            host, port = leader.address.rsplit(":", 1)
            async with MembershipClient([(host, int(port))], timeout=5.0, rpc_timeout=0.2) as c:
                adding = asyncio.create_task(c.add_learner(LEARNER))
                while not leader.appended:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.5)  # asked again meanwhile: refused as pending
                assert not adding.done()
                leader.committed = True
                assert await adding == 2
        finally:
            await provider.close(grace=0.2)

    run(main())
