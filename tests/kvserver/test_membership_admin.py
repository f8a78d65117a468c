"""kvserver.membership_admin over replicas on in-memory Raft cores: what a change's answer says
when the leader that proposed it stops leading before it commits."""

from __future__ import annotations

import asyncio

from kvapi.admin_pb2 import MemberAddRequest
from kvapi.codes import Err
from kvserver.membership_admin import MembershipAdmin
from raftcore import Role
from rpc import RpcController
from tests.kvserver.test_replica import Cluster


def test_a_change_whose_leader_lost_leadership_before_it_committed_has_an_unknown_outcome() -> None:
    # The followers append the change, then the leader is cut off and steps down (check-quorum)
    # before it learns of any acknowledgement. The next leader holds the entry and commits it:
    # the answer must not say "not applied, ask the leader" (ErrWrongLeader), after which a
    # client asking again is refused ("already the address of node3") for a change it made.
    async def main() -> None:
        c = Cluster()
        leader = c.elect(1)
        c.settle()
        admin = MembershipAdmin(leader, lambda member: "", lambda: None)
        request = MemberAddRequest(Address=b"127.0.0.1:7999")
        answer = asyncio.create_task(admin.member_add(request, RpcController()))
        await asyncio.sleep(0)  # proposed; now waiting for the commit
        c.settle(rounds=1)  # the append reaches the followers
        c.cut = {1}
        c.until(lambda: leader.role is not Role.LEADER)
        reply = await answer
        c.cut = set()
        c.until(lambda: all(4 in r.applied_membership.learners for r in c.replicas.values()))
        assert reply.Err == Err.TIMEOUT.wire, reply  # made after all: its outcome was unknown
        assert reply.Id == 4

    asyncio.run(asyncio.wait_for(main(), 30))
