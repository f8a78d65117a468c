"""The original C++ clients work unmodified: their exact bytes in, bare reply messages out."""

from __future__ import annotations

import asyncio

import pytest
from rpc_testkit import close_writer, read_until_eof, run, serving

from kvapi import kvserver_rpc_pb2 as kv
from rpc.codec import encode_request, request_prefix

# What the C++ client sends for PutAppend (seed-cpp.md): varint32 header length 0x1a, the header
# (service_name, method_name, args_size 30), then the 30 bytes of PutAppendArgs.
PUT_HEADER = b"\x1a" + b"\x0a\x0bkvServerRpc" + b"\x12\x09PutAppend" + b"\x18\x1e"
PUT_ARGS = (
    b"\x0a\x01x"  # Key "x"
    + b"\x12\x0chello world!"  # Value
    + b"\x1a\x03Put"  # Op
    + b"\x22\x04c-42"  # ClientId
    + b"\x28\x01"  # RequestId 1
)


def legacy_get(key: bytes) -> bytes:
    args = kv.GetArgs(Key=key, ClientId=b"c-42", RequestId=2).SerializeToString()
    return encode_request(request_prefix(b"kvServerRpc", b"Get"), args)


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    async with asyncio.timeout(3):
        return await reader.readexactly(n)


@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_the_cpp_clients_putappend_bytes_get_a_bare_reply(uvloop: bool) -> None:
    assert len(PUT_ARGS) == 30
    assert kv.PutAppendArgs.FromString(PUT_ARGS).Value == b"hello world!"

    async def main() -> None:
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(PUT_HEADER + PUT_ARGS)
            expected = kv.PutAppendReply(Err=b"OK").SerializeToString()
            assert expected == b"\x0a\x02OK"
            # the whole reply is the serialized message: nothing before, nothing after
            assert await read_exactly(reader, len(expected)) == expected
            writer.write(legacy_get(b"x"))
            reply = kv.GetReply(Err=b"OK", Value=b"hello world!").SerializeToString()
            assert await read_exactly(reader, len(reply)) == reply
            writer.write_eof()
            assert await read_until_eof(reader) == b""
            await close_writer(writer)

    run(main(), uvloop=uvloop)


def test_pipelined_legacy_requests_in_one_write_are_answered_in_order() -> None:
    async def main() -> None:
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # The first Get is the slowest: legacy replies must still leave in request order.
            writer.write(
                legacy_get(b"sleep:0.2")
                + PUT_HEADER
                + PUT_ARGS
                + legacy_get(b"x")
                + legacy_get(b"y")
            )
            expected = [
                kv.GetReply(Err=b"OK", Value=b"sleep:0.2"),
                kv.PutAppendReply(Err=b"OK"),
                kv.GetReply(Err=b"OK", Value=b"hello world!"),
                kv.GetReply(Err=b"ErrNoKey"),
            ]
            wire = b"".join(m.SerializeToString() for m in expected)
            assert await read_exactly(reader, len(wire)) == wire
            await close_writer(writer)

    run(main())


def test_legacy_reply_larger_than_1024_bytes() -> None:
    async def main() -> None:
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(legacy_get(b"big:5000"))
            expected = kv.GetReply(Err=b"OK", Value=b"v" * 5000).SerializeToString()
            assert len(expected) > 1024
            assert await read_exactly(reader, len(expected)) == expected
            await close_writer(writer)

    run(main())


def test_legacy_failure_closes_the_connection_after_earlier_replies() -> None:
    async def main() -> None:
        async with serving() as (_, port):
            for bad in (
                legacy_get(b"raise"),
                encode_request(request_prefix(b"kvServerRpc", b"Nope"), b""),
                encode_request(request_prefix(b"nope", b"Get"), b""),
                encode_request(request_prefix(b"kvServerRpc", b"Get"), b"\x0a\x09x"),
            ):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(legacy_get(b"sleep:0.1") + bad + legacy_get(b"y"))
                ok = kv.GetReply(Err=b"OK", Value=b"sleep:0.1").SerializeToString()
                # the reply before the failed call arrives, then the connection closes
                assert await read_until_eof(reader) == ok
                await close_writer(writer)

    run(main())


def test_legacy_and_framed_callers_share_a_server() -> None:
    async def main() -> None:
        async with serving() as (_, port):
            legacy = await asyncio.open_connection("127.0.0.1", port)
            framed = await asyncio.open_connection("127.0.0.1", port)
            legacy[1].write(PUT_HEADER + PUT_ARGS)
            framed[1].write(encode_request(request_prefix(b"kvServerRpc", b"Get"), b"", call_id=5))
            assert await read_exactly(legacy[0], 4) == b"\x0a\x02OK"
            head = await read_exactly(framed[0], 1)
            rest = await read_exactly(framed[0], head[0])
            assert rest.startswith(b"\x08\x05")  # call_id 5, status OK (omitted)
            for _, writer in (legacy, framed):
                await close_writer(writer)

    run(main())
