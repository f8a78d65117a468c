"""Membership on real nodes in one process (real TCP, real disk): a node joins with no
configuration and catches up, the configuration with every address survives a restart without
test.conf, a removed node learns it and stops, and ``force_new_cluster`` makes a survivor the
only member."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node_kit import cluster, join, leader_of, run, wait_for, write

from kvapi.admin_pb2 import MemberAddRequest, MemberIdRequest, MemberListRequest
from kvapi.codes import Err
from kvserver.force_new_cluster import force_new_cluster
from kvserver.kvcommand_pb2 import Result
from kvserver.node import Node, NodeConfig
from kvserver.storage import DiskStorage
from raftcore import Membership, Role
from rpc import RpcController


async def _settled_leader(nodes: dict[int, Node]) -> Node:
    """The leader once it committed an entry of its term (before that it refuses changes)."""
    leader = await leader_of(nodes)
    replica = leader.replica
    await wait_for(lambda: replica.storage.term(replica.commit_index) == replica.term)
    return leader


async def _admin_add(leader: Node, address: str) -> int:
    reply = await leader.admin.member_add(
        MemberAddRequest(Address=address.encode()), RpcController()
    )
    assert reply.Err == Err.OK.wire, reply
    return reply.Id


def test_a_joining_node_gets_the_log_and_every_member_then_votes(tmp_path: Path) -> None:
    run(_joining(tmp_path))


async def _joining(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await _settled_leader(nodes)
        for i in range(10):
            assert await write(leader, i + 1, b"k%d" % i, b"v%d" % i) == Result(err=Err.OK)
        new_node, address = await join(tmp_path, nodes)
        new = await _admin_add(leader, address)
        assert new == 4
        await new_node.start()
        nodes[new] = new_node
        await wait_for(lambda: new_node.replica.applied_index >= leader.replica.commit_index)
        assert new_node.replica.machine.get(b"k9") == b"v9"
        assert new_node.replica.membership.learners == (4,)
        assert new_node.status().Learner and new_node.status().Member
        for _ in range(100):  # refused (not yet) until the leader has the learner's answer
            reply = await leader.admin.member_promote(MemberIdRequest(Id=new), RpcController())
            if reply.Err != Err.CONF_CHANGE_NOT_YET.wire:
                break
            await asyncio.sleep(0.02)
        assert reply.Err == Err.OK.wire, reply
        await wait_for(lambda: new_node.replica.membership.voters == (1, 2, 3, 4))
        listed = leader.admin.member_list(MemberListRequest(), RpcController())
        assert [(m.Id, m.Address.decode(), m.Learner) for m in listed.Members][-1] == (
            4,
            address,
            False,
        )


def test_a_restarted_member_knows_its_peers_without_test_conf(tmp_path: Path) -> None:
    run(_restart_without_conf(tmp_path))


async def _restart_without_conf(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await _settled_leader(nodes)
        new_node, address = await join(tmp_path, nodes)
        new = await _admin_add(leader, address)
        await new_node.start()
        nodes[new] = new_node
        await wait_for(lambda: new_node.replica.applied_index >= leader.replica.commit_index)
        await new_node.stop()
        # Restarted with no test.conf at all: its data directory names every member.
        again = Node(
            NodeConfig(node_id=new, peers={}, data_dir=new_node.config.data_dir, tick_ms=5)
        )
        await again.start()
        nodes[new] = again
        assert again.address == new_node.address
        assert await write(leader, 1, b"after", b"restart") == Result(err=Err.OK)
        await wait_for(lambda: again.replica.machine.get(b"after") == b"restart")


def test_a_removed_follower_stops_and_the_rest_carries_on(tmp_path: Path) -> None:
    run(_removed_follower(tmp_path))


async def _removed_follower(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await _settled_leader(nodes)
        gone_id = next(i for i in nodes if nodes[i] is not leader)
        gone = nodes[gone_id]
        reply = await leader.admin.member_remove(MemberIdRequest(Id=gone_id), RpcController())
        assert reply.Err == Err.OK.wire, reply
        await asyncio.wait_for(gone.wait_stopped(), 10)  # told by a peer, or by its own log
        del nodes[gone_id]
        assert await write(leader, 1, b"k", b"v") == Result(err=Err.OK)
        assert leader.replica.membership.voters == tuple(sorted(nodes))


def test_removing_the_leader_hands_leadership_over(tmp_path: Path) -> None:
    run(_removed_leader(tmp_path))


async def _removed_leader(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await _settled_leader(nodes)
        old = leader.config.node_id
        reply = await leader.admin.member_remove(MemberIdRequest(Id=old), RpcController())
        assert reply.Err == Err.OK.wire, reply
        await asyncio.wait_for(leader.wait_stopped(), 10)
        del nodes[old]
        successor = await leader_of(nodes)
        assert successor.config.node_id != old
        assert old not in successor.replica.membership.members
        assert await write(successor, 1, b"k", b"v") == Result(err=Err.OK)


def test_force_new_cluster_leaves_the_survivor_alone_with_its_data(tmp_path: Path) -> None:
    run(_forced(tmp_path))


async def _forced(tmp_path: Path) -> None:
    async with cluster(tmp_path) as nodes:
        leader = await _settled_leader(nodes)
        assert await write(leader, 1, b"k", b"v") == Result(err=Err.OK)
        await wait_for(lambda: all(n.replica.machine.get(b"k") == b"v" for n in nodes.values()))
        survivor = nodes[1]
        config = survivor.config
        for node in nodes.values():
            await node.stop()
    with DiskStorage(config.data_dir) as storage:
        forced = force_new_cluster(storage, 1, None, config.peers)
        assert forced == Membership((1,), (), {1: "{}:{}".format(*config.peers[1])}, 4)
        assert force_new_cluster(storage, 1, None, config.peers) == forced  # idempotent
        last = storage.last_index()
    alone = Node(NodeConfig(node_id=1, peers=config.peers, data_dir=config.data_dir, tick_ms=5))
    await alone.start()
    try:
        await wait_for(lambda: alone.replica.role is Role.LEADER)
        assert alone.replica.machine.get(b"k") == b"v"
        await wait_for(lambda: alone.replica.commit_index > last)
        reply = await alone.admin.member_add(
            MemberAddRequest(Address=b"127.0.0.1:1"), RpcController()
        )
        assert (reply.Err, reply.Id) == (Err.OK.wire, 4)  # ids are still never reused
    finally:
        await alone.stop()
