"""KVService over real RPC against an in-process 3-replica cluster, and the C++ client's bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from kvapi import kvserver_rpc_pb2 as pb
from kvapi.codes import Err
from kvapi.stubs import KvServerRpc
from kvserver.service import FutureWaiter, KVService, Rejected
from rpc import RpcChannel
from rpc.codec import encode_request, request_prefix
from tests.clerk.clerk_testkit import LocalCluster, local_cluster, run

# What the C++ client sends for PutAppend (seed-cpp.md): varint32 header length 0x1a, the header
# (service_name "kvServerRpc", method_name "PutAppend", args_size 30), then PutAppendArgs
# {Key "x", Value "hello world!", Op "Put", ClientId "c-42", RequestId 1}.
LEGACY_PUT = (
    b"\x1a\x0a\x0bkvServerRpc\x12\x09PutAppend\x18\x1e"
    b"\x0a\x01x\x12\x0chello world!\x1a\x03Put\x22\x04c-42\x28\x01"
)


def original_messages() -> dict[str, Any]:
    """The C++ original's kvServerRPC.proto messages, built from its field list (seed-cpp.md)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="original_kvServerRPC.proto", package="raftKVRpcProctoc", syntax="proto3"
    )
    fields = {
        "GetArgs": [("Key", "bytes"), ("ClientId", "bytes"), ("RequestId", "int32")],
        "GetReply": [("Err", "bytes"), ("Value", "bytes")],
        "PutAppendArgs": [
            ("Key", "bytes"),
            ("Value", "bytes"),
            ("Op", "bytes"),
            ("ClientId", "bytes"),
            ("RequestId", "int32"),
        ],
        "PutAppendReply": [("Err", "bytes")],
    }
    kinds = {
        "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    }
    for name, spec in fields.items():
        message = proto.message_type.add(name=name)
        for number, (field, kind) in enumerate(spec, start=1):
            message.field.add(
                name=field,
                number=number,
                type=kinds[kind],
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    file = pool.FindFileByName(proto.name)
    return {name: GetMessageClass(file.message_types_by_name[name]) for name in fields}


def stub_for(cluster: LocalCluster, i: int) -> tuple[RpcChannel, KvServerRpc]:
    host, port = cluster.addresses[i]
    channel = RpcChannel(host, port, default_timeout=2.0)
    return channel, KvServerRpc(channel)


def put(key: bytes, value: bytes, rid: int, op: bytes = b"Put", client: bytes = b"c1") -> Any:
    return pb.PutAppendArgs(Key=key, Value=value, Op=op, ClientId=client, RequestId=rid)


def test_put_append_get_on_the_leader() -> None:
    async def main() -> None:
        async with local_cluster() as cluster:
            leader = await cluster.wait_leader()
            channel, kv = stub_for(cluster, leader)
            async with channel:
                assert (await kv.PutAppend(put(b"k", b"a", 1))).Err == b"OK"
                assert (await kv.PutAppend(put(b"k", b"b", 2, b"Append"))).Err == b"OK"
                reply = await kv.Get(pb.GetArgs(Key=b"k"))
                assert (reply.Err, reply.Value) == (b"OK", b"ab")
                assert reply.LeaderHint == leader + 1
                assert reply.ServedMode == pb.READ_LINEARIZABLE
                missing = await kv.Get(pb.GetArgs(Key=b"nope"))
                assert (missing.Err, missing.Value) == (b"ErrNoKey", b"")
                # Append to an absent key starts from empty.
                assert (await kv.PutAppend(put(b"fresh", b"z", 3, b"Append"))).Err == b"OK"
                assert (await kv.Get(pb.GetArgs(Key=b"fresh"))).Value == b"z"
            for r in cluster.replicas:
                await wait_applied(cluster, r.applied_index)
            assert [r.machine.get(b"k") for r in cluster.replicas] == [b"ab"] * 3

    run(main())


def test_an_unknown_session_with_history_is_refused_and_a_legacy_one_is_not() -> None:
    """A ClientId the table does not hold whose AckedBelow is above 1 had requests answered
    before: refused ErrSessionExpired, nothing applied. A legacy client (AckedBelow 0) whose
    first write has RequestId 2 (its Gets take ids too) starts a session."""

    async def main() -> None:
        async with local_cluster() as cluster:
            leader = await cluster.wait_leader()
            channel, kv = stub_for(cluster, leader)
            async with channel:
                args = put(b"k", b"x", 5, b"Append", client=b"forgotten")
                args.AckedBelow = 5
                assert (await kv.PutAppend(args)).Err == b"ErrSessionExpired"
                assert (await kv.PutAppend(args)).Err == b"ErrSessionExpired"
                legacy = put(b"k", b"y", 2, b"Append", client=b"legacy")
                assert (await kv.PutAppend(legacy)).Err == b"OK"
                fresh = put(b"k", b"z", 1, b"Append", client=b"fresh")
                fresh.AckedBelow = 1
                assert (await kv.PutAppend(fresh)).Err == b"OK"
                assert (await kv.Get(pb.GetArgs(Key=b"k"))).Value == b"yz"

    run(main())


async def wait_applied(cluster: LocalCluster, index: int) -> None:
    async with asyncio.timeout(3):
        while min(r.applied_index for r in cluster.replicas) < index:
            await asyncio.sleep(0.01)


def test_a_retried_write_is_answered_from_the_session_not_applied_again() -> None:
    async def main() -> None:
        async with local_cluster() as cluster:
            leader = await cluster.wait_leader()
            channel, kv = stub_for(cluster, leader)
            async with channel:
                for _ in range(3):
                    reply = await kv.PutAppend(put(b"k", b"x", 1, b"Append"))
                    assert reply.Err == b"OK"
                assert (await kv.Get(pb.GetArgs(Key=b"k"))).Value == b"x"
                # Once the client says it has seen answers below 3, id 1 is stale.
                args = put(b"k", b"y", 3, b"Append")
                args.AckedBelow = 3
                assert (await kv.PutAppend(args)).Err == b"OK"
                late = await kv.PutAppend(put(b"k", b"x", 2, b"Append"))
                assert late.Err == b"ErrStaleRequest"
                assert (await kv.Get(pb.GetArgs(Key=b"k"))).Value == b"xy"

    run(main())


def test_new_operations() -> None:
    async def main() -> None:
        async with local_cluster() as cluster:
            leader = await cluster.wait_leader()
            channel, kv = stub_for(cluster, leader)
            ids = iter(range(1, 100))

            def w(**fields: Any) -> dict[str, Any]:
                return {"ClientId": b"c2", "RequestId": next(ids), **fields}

            async with channel:
                r: Any = await kv.PutIfAbsent(pb.PutIfAbsentArgs(**w(Key=b"a", Value=b"1")))
                assert r.Err == b"OK"
                r = await kv.PutIfAbsent(pb.PutIfAbsentArgs(**w(Key=b"a", Value=b"2")))
                assert (r.Err, r.Value) == (b"ErrKeyExists", b"1")
                r = await kv.Update(pb.UpdateArgs(**w(Key=b"a", Value=b"3")))
                assert (r.Err, r.Value) == (b"OK", b"1")
                r = await kv.Update(pb.UpdateArgs(**w(Key=b"b", Value=b"3")))
                assert r.Err == b"ErrNoKey"
                cas = pb.CompareAndSwapArgs
                r = await kv.CompareAndSwap(cas(**w(Key=b"a", Expected=b"9", Value=b"4")))
                assert (r.Err, r.Value) == (b"ErrCasMismatch", b"3")
                r = await kv.CompareAndSwap(cas(**w(Key=b"a", Expected=b"3", Value=b"4")))
                assert (r.Err, r.Value) == (b"OK", b"3")
                r = await kv.CompareAndSwap(cas(**w(Key=b"c", ExpectAbsent=True, Value=b"5")))
                assert r.Err == b"OK"
                r = await kv.CompareAndSwap(cas(**w(Key=b"c", ExpectAbsent=True, Value=b"6")))
                assert (r.Err, r.Value) == (b"ErrCasMismatch", b"5")
                r = await kv.CompareAndSwap(cas(**w(Key=b"d", Expected=b"x", Value=b"6")))
                assert r.Err == b"ErrNoKey"
                r = await kv.Scan(pb.ScanArgs())
                assert [(p.Key, p.Value) for p in r.Pairs] == [(b"a", b"4"), (b"c", b"5")]
                r = await kv.Scan(pb.ScanArgs(Start=b"b", End=b"d"))
                assert [p.Key for p in r.Pairs] == [b"c"]
                r = await kv.Scan(pb.ScanArgs(Limit=1))
                assert [p.Key for p in r.Pairs] == [b"a"]
                r = await kv.Delete(pb.DeleteArgs(**w(Key=b"a")))
                assert (r.Err, r.Value) == (b"OK", b"4")
                r = await kv.Delete(pb.DeleteArgs(**w(Key=b"a")))
                assert r.Err == b"ErrNoKey"
                assert (await kv.Get(pb.GetArgs(Key=b"a"))).Err == b"ErrNoKey"

    run(main())


def test_followers_redirect_with_a_leader_hint_and_serve_labelled_stale_reads() -> None:
    async def main() -> None:
        async with local_cluster() as cluster:
            leader = await cluster.wait_leader()
            follower = (leader + 1) % 3
            lch, lkv = stub_for(cluster, leader)
            fch, fkv = stub_for(cluster, follower)
            async with lch, fch:
                assert (await lkv.PutAppend(put(b"k", b"v", 1))).Err == b"OK"
                reply = await fkv.PutAppend(put(b"k", b"w", 2))
                assert (reply.Err, reply.LeaderHint) == (b"ErrWrongLeader", leader + 1)
                reply = await fkv.Get(pb.GetArgs(Key=b"k"))
                assert (reply.Err, reply.LeaderHint) == (b"ErrWrongLeader", leader + 1)
                await wait_applied(cluster, cluster.replicas[leader].applied_index)
                stale = await fkv.Get(pb.GetArgs(Key=b"k", Mode=pb.READ_STALE))
                assert (stale.Err, stale.Value) == (b"OK", b"v")
                assert stale.ServedMode == pb.READ_STALE
                scan = await fkv.Scan(pb.ScanArgs(Mode=pb.READ_STALE))
                assert scan.ServedMode == pb.READ_STALE
                assert [p.Key for p in scan.Pairs] == [b"k"]

    run(main())


def test_lease_reads_are_labelled_by_how_the_node_serves_them() -> None:
    async def main() -> None:
        for lease_reads, expected in ((True, pb.READ_LEASE), (False, pb.READ_LINEARIZABLE)):
            async with local_cluster(lease_reads=lease_reads) as cluster:
                leader = await cluster.wait_leader()
                channel, kv = stub_for(cluster, leader)
                async with channel:
                    reply = await kv.Get(pb.GetArgs(Key=b"k", Mode=pb.READ_LEASE))
                    assert (reply.Err, reply.ServedMode) == (b"ErrNoKey", expected)

    run(main())


def test_bad_requests_are_refused_without_touching_the_log() -> None:
    async def main() -> None:
        async with local_cluster() as cluster:
            leader = await cluster.wait_leader()
            channel, kv = stub_for(cluster, leader)
            before = cluster.replicas[leader].status().last_index
            bad = Err.BAD_REQUEST.encode()
            async with channel:
                assert (await kv.PutAppend(put(b"k", b"v", 1, b"Delete"))).Err == bad
                assert (await kv.PutAppend(put(b"k", b"v", 1, client=b""))).Err == bad
                assert (await kv.PutAppend(put(b"k", b"v", 0))).Err == bad
                args = put(b"k", b"v", 2)
                args.AckedBelow = 3
                assert (await kv.PutAppend(args)).Err == bad
                assert (await kv.Get(pb.GetArgs(Key=b"k", Mode=7))).Err == bad  # type: ignore[arg-type]
                assert (await kv.Scan(pb.ScanArgs(Mode=9))).Err == bad  # type: ignore[arg-type]
            assert cluster.replicas[leader].status().last_index == before

    run(main())


def test_a_request_that_cannot_commit_gets_err_timeout() -> None:
    async def main() -> None:
        async with local_cluster(request_timeout=0.2) as cluster:
            leader = await cluster.wait_leader()
            channel, kv = stub_for(cluster, leader)
            async with channel:
                cluster.frozen = True
                loop = asyncio.get_running_loop()
                started = loop.time()
                reply = await kv.PutAppend(put(b"k", b"v", 1))
                assert reply.Err == Err.TIMEOUT.encode()
                reply = await kv.Get(pb.GetArgs(Key=b"k"))
                assert reply.Err == Err.TIMEOUT.encode()
                assert 0.35 <= loop.time() - started < 1.5
                # Once the cluster moves again, the retry with the same id applies it once.
                cluster.frozen = False
                for _ in range(50):
                    reply = await kv.PutAppend(put(b"k", b"v", 1))
                    if reply.Err == b"OK":
                        break
                assert reply.Err == b"OK"

    run(main())


def test_the_cpp_clients_bytes_get_bare_replies_the_original_can_parse() -> None:
    original = original_messages()

    async def main() -> None:
        async with local_cluster() as cluster:
            leader = await cluster.wait_leader()
            reader, writer = await asyncio.open_connection(*cluster.addresses[leader])
            try:
                writer.write(LEGACY_PUT)
                wire = pb.PutAppendReply(Err=b"OK", LeaderHint=leader + 1).SerializeToString()
                async with asyncio.timeout(3):
                    got = await reader.readexactly(len(wire))
                assert got == wire
                # The original's PutAppendReply reads it, skipping the added field.
                assert original["PutAppendReply"].FromString(got).Err == b"OK"
                get = original["GetArgs"](Key=b"x", ClientId=b"c-42", RequestId=2)
                writer.write(
                    encode_request(request_prefix(b"kvServerRpc", b"Get"), get.SerializeToString())
                )
                wire = pb.GetReply(
                    Err=b"OK", Value=b"hello world!", LeaderHint=leader + 1
                ).SerializeToString()
                async with asyncio.timeout(3):
                    got = await reader.readexactly(len(wire))
                parsed = original["GetReply"].FromString(got)
                assert (parsed.Err, parsed.Value) == (b"OK", b"hello world!")
            finally:
                writer.close()
                await writer.wait_closed()

    run(main())


def test_future_waiter_answers_once_and_ignores_late_calls() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        waiter = FutureWaiter(done)
        waiter.resolve(1)
        waiter.reject("ErrWrongLeader")
        waiter.resolve(2)
        assert done.result() == 1
        rejected: asyncio.Future[int] = loop.create_future()
        FutureWaiter(rejected).reject("ErrWrongLeader")
        with pytest.raises(Rejected, match="ErrWrongLeader"):
            rejected.result()
        gave_up: asyncio.Future[int] = loop.create_future()
        gave_up.cancel()
        FutureWaiter(gave_up).resolve(3)  # the handler gave up: nothing to do, no error
        assert gave_up.cancelled()

    run(main())


def test_service_validates_its_timeout() -> None:
    cluster = LocalCluster()
    with pytest.raises(ValueError, match="request_timeout"):
        KVService(cluster.replicas[0], lambda: 0, lambda: None, request_timeout=0)
