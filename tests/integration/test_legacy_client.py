"""The original C++ callerMain's bytes against real node processes (legacy wire mode).

The client below writes requests byte for byte as the C++ client does (a varint32 header length,
an ``RPC.RpcHeader`` with no call id, the args) and reads bare replies, moving to the next server
on ``ErrWrongLeader`` with the same RequestId, as the original Clerk does. Nothing of the
project's RPC layer is used on the client side.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from google.protobuf.message import DecodeError, Message

from cluster.processes import ProcCluster
from kvapi.kvserver_rpc_pb2 import GetArgs, GetReply, PutAppendArgs, PutAppendReply

MakeCluster = Callable[..., ProcCluster]

# Each scenario is bounded: a hung one fails (and its fixture still stops every node).
pytestmark = pytest.mark.timeout(60)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def legacy_frame(method: str, args: Message) -> bytes:
    """What the C++ client sends: varint32(len(header)) + header + args."""
    payload = args.SerializeToString()
    header = _field(1, b"kvServerRpc") + _field(2, method.encode())
    header += _varint(3 << 3 | 0) + _varint(len(payload))
    return _varint(len(header)) + header + payload


class LegacyClerk:
    """The original Clerk's retry loop over one connection per server."""

    def __init__(self, servers: list[tuple[str, int]]) -> None:
        self.servers = servers
        self.leader = 0
        self.client_id = str(uuid.uuid4()).encode()
        self.request_id = 0
        self.conns: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def _ask(self, server: int, frame: bytes, reply: Message) -> Message | None:
        try:
            if server not in self.conns:
                self.conns[server] = await asyncio.open_connection(*self.servers[server])
            reader, writer = self.conns[server]
            writer.write(frame)
            data = b""
            # A bare reply has no length: read until it parses (KV replies are never empty).
            async with asyncio.timeout(2):
                while True:
                    chunk = await reader.read(1024)
                    if not chunk:
                        raise ConnectionError("closed")
                    data += chunk
                    try:
                        reply.ParseFromString(data)
                    except DecodeError:
                        continue
                    return reply
        except (OSError, TimeoutError):
            conn = self.conns.pop(server, None)
            if conn is not None:
                conn[1].close()
            return None

    async def call(self, method: str, args: Message, reply_type: type[Message]) -> Message:
        frame = legacy_frame(method, args)
        async with asyncio.timeout(20):
            while True:
                reply = await self._ask(self.leader, frame, reply_type())
                err = getattr(reply, "Err", b"")
                if reply is not None and err in (b"OK", b"ErrNoKey"):
                    return reply
                self.leader = (self.leader + 1) % len(self.servers)
                if self.leader == 0:
                    await asyncio.sleep(0.05)

    async def put(self, key: str, value: str) -> None:
        self.request_id += 1
        args = PutAppendArgs(
            Key=key.encode(),
            Value=value.encode(),
            Op=b"Put",
            ClientId=self.client_id,
            RequestId=self.request_id,
        )
        await self.call("PutAppend", args, PutAppendReply)

    async def get(self, key: str) -> bytes:
        self.request_id += 1
        args = GetArgs(Key=key.encode(), ClientId=self.client_id, RequestId=self.request_id)
        reply = await self.call("Get", args, GetReply)
        assert isinstance(reply, GetReply)
        return reply.Value

    def close(self) -> None:
        for _, writer in self.conns.values():
            writer.close()


def test_the_original_caller_main_loop_works_in_legacy_mode(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)

    async def main() -> None:
        await cluster.wait_leader(timeout=20)
        legacy = LegacyClerk(cluster.servers)
        try:
            for i in range(30):
                await legacy.put("x", str(i))
                assert await legacy.get("x") == str(i).encode()
        finally:
            legacy.close()
        async with cluster.clerk() as kv:
            assert await kv.get("x") == b"29"

    asyncio.run(asyncio.wait_for(main(), 60))
