"""RpcProvider behaviour: dispatch, pipelining, every bad-input case, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api
from rpc_testkit import (
    KV_SERVICE,
    KvHandlers,
    close_writer,
    kv_handler_map,
    read_until_eof,
    run,
    serving,
)

from examples import friend_pb2
from examples.friend_stub import FriendRpc
from kvapi import kvserver_rpc_pb2 as kv
from kvapi.stubs import KvServerRpc
from rpc import RpcChannel, RpcController, RpcProvider, RpcRemoteError, Status
from rpc.codec import (
    ResponseDecoder,
    encode_cancel,
    encode_request,
    encode_varint,
    request_prefix,
)

GET = request_prefix(b"kvServerRpc", b"Get")


def get_frame(key: bytes, call_id: int, deadline_ms: int = 0) -> bytes:
    return encode_request(GET, kv.GetArgs(Key=key).SerializeToString(), call_id, deadline_ms)


async def expect_remote(call: Awaitable[Any], status: Status) -> RpcRemoteError:
    with pytest.raises(RpcRemoteError) as info:
        await call
    assert info.value.status == status
    return info.value


@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_calls_round_trip_through_a_stub(uvloop: bool) -> None:
    async def main() -> None:
        async with serving() as (_, port), RpcChannel("127.0.0.1", port) as channel:
            stub = KvServerRpc(channel)
            put = kv.PutAppendArgs(Key=b"k", Value=b"v1", Op=b"Put", ClientId=b"c", RequestId=1)
            assert (await stub.PutAppend(put, timeout=1)).Err == b"OK"
            put.Op, put.Value = b"Append", b"+v2"
            await stub.PutAppend(put, timeout=1)
            reply = await stub.Get(kv.GetArgs(Key=b"k"), timeout=1)
            assert isinstance(reply, kv.GetReply)
            assert (reply.Err, reply.Value) == (b"OK", b"v1+v2")
            missing = await channel.call("kvServerRpc", "Get", kv.GetArgs(Key=b"x"), kv.GetReply)
            assert missing.Err == b"ErrNoKey"

    run(main(), uvloop=uvloop)


def test_pipelined_calls_run_concurrently_and_replies_match_call_ids() -> None:
    async def main() -> None:
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # The first request is the slowest: its reply must come last, matched by call id.
            writer.write(
                b"".join(get_frame(f"sleep:{0.3 - i * 0.1:.1f}".encode(), i + 1) for i in range(3))
            )
            decoder = ResponseDecoder()
            frames = []
            async with asyncio.timeout(2):
                while len(frames) < 3:
                    frames += decoder.feed(await reader.read(4096))
            assert [f.header.call_id for f in frames] == [3, 2, 1]
            for frame in frames:
                reply = kv.GetReply.FromString(frame.payload)
                assert reply.Value == f"sleep:{0.3 - (frame.header.call_id - 1) * 0.1:.1f}".encode()
            await close_writer(writer)

    run(main())


def test_many_connections_and_many_concurrent_calls() -> None:
    async def main() -> None:
        async with serving() as (_, port):
            channels = [RpcChannel("127.0.0.1", port) for _ in range(8)]
            calls = [
                ch.call("kvServerRpc", "Get", kv.GetArgs(Key=f"big:{i}".encode()), kv.GetReply)
                for i in range(50)
                for ch in channels
            ]
            replies = await asyncio.gather(*calls)
            assert [len(r.Value) for r in replies] == [i for i in range(50) for _ in channels]
            for ch in channels:
                await ch.close()

    run(main())


def test_unknown_service_and_method_get_error_statuses(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with serving() as (_, port), RpcChannel("127.0.0.1", port) as channel:
            err = await expect_remote(
                channel.call("nope", "Get", kv.GetArgs(), kv.GetReply), Status.UNKNOWN_SERVICE
            )
            assert "nope" in err.text
            err = await expect_remote(
                channel.call("kvServerRpc", "Put", kv.GetArgs(), kv.GetReply),
                Status.UNKNOWN_METHOD,
            )
            assert "Put" in err.text
            # the same connection still works
            assert (await channel.call("kvServerRpc", "Get", kv.GetArgs(), kv.GetReply)).Err

    with caplog.at_level(logging.WARNING, logger="rpc.provider"):
        run(main())
    assert sum("unknown service 'nope'" in r.getMessage() for r in caplog.records) == 1


def test_args_that_do_not_parse_are_a_bad_request(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(encode_request(GET, b"\x0a\x05ab", call_id=9) + get_frame(b"x", 10))
            decoder = ResponseDecoder()
            frames = []
            async with asyncio.timeout(2):
                while len(frames) < 2:
                    frames += decoder.feed(await reader.read(4096))
            bad, good = sorted(frames, key=lambda f: f.header.call_id)
            assert (bad.header.call_id, bad.header.status) == (9, Status.BAD_REQUEST)
            assert b"kvServerRpc.Get" in bad.header.error_text
            assert good.header.status == Status.OK
            await close_writer(writer)

    with caplog.at_level(logging.WARNING, logger="rpc.provider"):
        run(main())
    assert any("args do not parse" in r.getMessage() for r in caplog.records)


def test_a_raising_handler_fails_only_its_call(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with serving() as (_, port):
            one = RpcChannel("127.0.0.1", port)
            other = RpcChannel("127.0.0.1", port)
            slow = asyncio.ensure_future(
                other.call("kvServerRpc", "Get", kv.GetArgs(Key=b"sleep:0.2"), kv.GetReply)
            )
            err = await expect_remote(
                one.call("kvServerRpc", "Get", kv.GetArgs(Key=b"raise"), kv.GetReply),
                Status.HANDLER_ERROR,
            )
            assert err.text == "RuntimeError: boom"
            assert (await one.call("kvServerRpc", "Get", kv.GetArgs(), kv.GetReply)).Err
            assert (await slow).Value == b"sleep:0.2"
            await one.close()
            await other.close()

    with caplog.at_level(logging.WARNING, logger="rpc.provider"):
        run(main())
    lines = [r.getMessage() for r in caplog.records if "boom" in r.getMessage()]
    assert len(lines) == 1 and "kvServerRpc.Get" in lines[0]


def test_set_failed_and_wrong_response_type_are_handler_errors() -> None:
    async def main() -> None:
        async with serving() as (_, port), RpcChannel("127.0.0.1", port) as channel:
            err = await expect_remote(
                channel.call("kvServerRpc", "Get", kv.GetArgs(Key=b"fail"), kv.GetReply),
                Status.HANDLER_ERROR,
            )
            assert err.text == "no such thing"
            err = await expect_remote(
                channel.call("kvServerRpc", "Get", kv.GetArgs(Key=b"wrong-type"), kv.GetReply),
                Status.HANDLER_ERROR,
            )
            assert "expected raftKVRpcProctoc.GetReply" in err.text

    run(main())


def test_server_drops_work_whose_deadline_passed() -> None:
    handlers = KvHandlers()

    async def main() -> None:
        async with serving(handlers) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(get_frame(b"sleep:5", 1, deadline_ms=100))
            decoder = ResponseDecoder()
            async with asyncio.timeout(2):
                frames = []
                while not frames:
                    frames = decoder.feed(await reader.read(4096))
            assert frames[0].header.status == Status.DEADLINE_EXCEEDED
            assert handlers.cancelled == [b"sleep:5"]
            await close_writer(writer)

    run(main())


def test_cancel_frame_stops_the_handler_and_suppresses_its_reply() -> None:
    handlers = KvHandlers()

    async def main() -> None:
        async with serving(handlers) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(get_frame(b"sleep:5", 1) + get_frame(b"sleep:0.2", 2))
            await asyncio.sleep(0.05)
            # cancelling call 1, an unknown id and (again) call 1 is harmless
            writer.write(encode_cancel(1) + encode_cancel(99) + encode_cancel(1))
            decoder = ResponseDecoder()
            frames = []
            async with asyncio.timeout(2):
                while not frames:
                    frames = decoder.feed(await reader.read(4096))
            assert [(f.header.call_id, f.header.status) for f in frames] == [(2, Status.OK)]
            assert handlers.cancelled == [b"sleep:5"]
            await close_writer(writer)

    run(main())


def test_handler_sees_the_callers_deadline() -> None:
    async def main() -> None:
        async with serving() as (_, port), RpcChannel("127.0.0.1", port) as channel:
            loop = asyncio.get_running_loop()
            before = loop.time()
            reply = await channel.call(
                "kvServerRpc", "Get", kv.GetArgs(Key=b"deadline"), kv.GetReply, timeout=2.0
            )
            deadline = float(reply.Value)
            assert before + 1.5 < deadline < loop.time() + 2.1
            reply = await channel.call(
                "kvServerRpc", "Get", kv.GetArgs(Key=b"deadline"), kv.GetReply
            )
            assert reply.Value == b"None"

    run(main())


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\xff\xff\xff\xff\xff\x01", id="overlong-varint"),
        pytest.param(b"\x03\x0a\x0a\x41", id="bad-header"),
        pytest.param(
            encode_varint(9) + b"\x0a\x01S\x12\x01M\x18\xff\x7f" + b"x" * 10, id="oversize"
        ),
    ],
)
def test_bad_streams_close_only_their_connection(
    garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with (
            serving(max_frame_size=1000) as (_, port),
            RpcChannel("127.0.0.1", port) as channel,
        ):
            assert (await channel.call("kvServerRpc", "Get", kv.GetArgs(), kv.GetReply)).Err
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(garbage)
            assert await read_until_eof(reader, 2) == b""
            await close_writer(writer)
            assert (await channel.call("kvServerRpc", "Get", kv.GetArgs(), kv.GetReply)).Err

    with caplog.at_level(logging.WARNING, logger="rpc.provider"):
        run(main())
    assert sum("bad request stream" in r.getMessage() for r in caplog.records) == 1


def test_half_sent_frame_times_out() -> None:
    async def main() -> None:
        async with serving(frame_timeout=0.3) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            frame = get_frame(b"k", 1)
            writer.write(frame[:-3])
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert await read_until_eof(reader, 2) == b""
            assert 0.25 < loop.time() - start < 1.0
            await close_writer(writer)

    run(main())


def test_idle_connection_times_out_but_a_busy_one_does_not() -> None:
    async def main() -> None:
        async with serving(idle_timeout=0.3) as (_, port):
            idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
            async with RpcChannel("127.0.0.1", port) as channel:
                # a single call that outlives the idle timeout keeps its connection open
                reply = await channel.call(
                    "kvServerRpc", "Get", kv.GetArgs(Key=b"sleep:0.6"), kv.GetReply
                )
                assert reply.Err == b"OK"
                assert await read_until_eof(idle_reader, 2) == b""
                await asyncio.sleep(0.6)
                assert not channel.connected
                # the channel reconnects lazily
                assert (await channel.call("kvServerRpc", "Get", kv.GetArgs(), kv.GetReply)).Err
            await close_writer(idle_writer)

    run(main())


def test_graceful_close_finishes_in_flight_calls_then_refuses() -> None:
    async def main() -> None:
        provider = RpcProvider()
        provider.register(KV_SERVICE, kv_handler_map(KvHandlers()))
        _, port = await provider.start()
        async with RpcChannel("127.0.0.1", port) as channel:
            pending = asyncio.ensure_future(
                channel.call("kvServerRpc", "Get", kv.GetArgs(Key=b"sleep:0.2"), kv.GetReply)
            )
            await asyncio.sleep(0.05)
            await provider.close(grace=2.0)
            assert (await pending).Value == b"sleep:0.2"
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    run(main())


def test_close_past_grace_answers_shutting_down() -> None:
    handlers = KvHandlers()

    async def main() -> None:
        provider = RpcProvider()
        provider.register(KV_SERVICE, kv_handler_map(handlers))
        _, port = await provider.start()
        async with RpcChannel("127.0.0.1", port) as channel:
            pending = asyncio.ensure_future(
                channel.call("kvServerRpc", "Get", kv.GetArgs(Key=b"sleep:10"), kv.GetReply)
            )
            await asyncio.sleep(0.05)
            await provider.close(grace=0.1)
            await expect_remote(pending, Status.SHUTTING_DOWN)
        assert handlers.cancelled == [b"sleep:10"]

    run(main())


def test_requests_arriving_during_shutdown_are_refused() -> None:
    async def main() -> None:
        async with serving() as (provider, port), RpcChannel("127.0.0.1", port) as channel:
            slow = asyncio.ensure_future(
                channel.call("kvServerRpc", "Get", kv.GetArgs(Key=b"sleep:0.3"), kv.GetReply)
            )
            await asyncio.sleep(0.05)
            closing = asyncio.ensure_future(provider.close(grace=2.0))
            await asyncio.sleep(0.05)
            await expect_remote(
                channel.call("kvServerRpc", "Get", kv.GetArgs(), kv.GetReply),
                Status.SHUTTING_DOWN,
            )
            assert (await slow).Err == b"OK"
            await closing

    run(main())


def test_too_many_inflight_calls_pause_reading_not_fail() -> None:
    async def main() -> None:
        async with (
            serving(max_inflight_per_connection=4) as (_, port),
            RpcChannel("127.0.0.1", port) as channel,
        ):
            keys = [f"sleep:0.0{i % 5}".encode() for i in range(40)]
            replies = await asyncio.gather(
                *(channel.call("kvServerRpc", "Get", kv.GetArgs(Key=k), kv.GetReply) for k in keys)
            )
            assert [r.Value for r in replies] == keys

    run(main())


def test_registration_validates_handlers() -> None:
    provider = RpcProvider()
    with pytest.raises(ValueError, match=r"no handler for raftKVRpcProctoc\.kvServerRpc\.Get"):
        provider.register(KV_SERVICE, {"PutAppend": KvHandlers().PutAppend})
    handlers = KvHandlers()
    with pytest.raises(ValueError, match="no methods named"):
        provider.register(KV_SERVICE, {**kv_handler_map(handlers), "Nope": handlers.Get})
    with pytest.raises(ValueError, match="no handler for"):
        provider.register(KV_SERVICE, object())
    provider.register(KV_SERVICE, kv_handler_map(handlers))
    with pytest.raises(ValueError, match="already registered"):
        provider.register(KV_SERVICE, kv_handler_map(handlers))
    with pytest.raises(ValueError):
        RpcProvider(frame_timeout=0)


def test_two_services_on_one_provider() -> None:
    friends = FriendRpc.SERVICE

    async def get_friends(
        request: friend_pb2.GetFriendsListRequest, controller: RpcController
    ) -> friend_pb2.GetFriendsListResponse:
        return friend_pb2.GetFriendsListResponse(friends=[str(request.userid).encode()])

    async def main() -> None:
        provider = RpcProvider()
        provider.register(KV_SERVICE, kv_handler_map(KvHandlers()))
        provider.register(friends, {"GetFriendsList": get_friends})
        _, port = await provider.start()
        async with provider, RpcChannel("127.0.0.1", port) as channel:
            reply = await FriendRpc(channel).GetFriendsList(
                friend_pb2.GetFriendsListRequest(userid=42)
            )
            assert list(reply.friends) == [b"42"]
            assert (await KvServerRpc(channel).Get(kv.GetArgs())).Err

    run(main())


def test_a_plain_function_handler_is_answered_inline_and_its_errors_are_handler_errors() -> None:
    """A handler that is a plain function (a method that never waits) is answered without a
    task; raising, failing through the controller or returning the wrong type are answered
    HANDLER_ERROR like from a coroutine handler, and the connection keeps working."""

    def sync_get(request: kv.GetArgs, controller: RpcController) -> Any:
        if request.Key == b"raise":
            raise KeyError("injected")
        if request.Key == b"fail":
            controller.set_failed("refused")
            return kv.GetReply()
        if request.Key == b"wrong":
            return kv.PutAppendReply()
        return kv.GetReply(Err=b"OK", Value=request.Key)

    async def main() -> None:
        provider = RpcProvider()
        provider.register(KV_SERVICE, {**kv_handler_map(KvHandlers()), "Get": sync_get})
        _, port = await provider.start()
        async with provider, RpcChannel("127.0.0.1", port) as channel:
            reply = await channel.call("kvServerRpc", "Get", kv.GetArgs(Key=b"x"), kv.GetReply)
            assert (reply.Err, reply.Value) == (b"OK", b"x")
            for key, text in ((b"raise", "KeyError"), (b"fail", "refused"), (b"wrong", "expected")):
                err = await expect_remote(
                    channel.call("kvServerRpc", "Get", kv.GetArgs(Key=key), kv.GetReply),
                    Status.HANDLER_ERROR,
                )
                assert text in err.text
            put = kv.PutAppendArgs(Key=b"k", Value=b"v", Op=b"Put")
            reply = await channel.call("kvServerRpc", "PutAppend", put, kv.PutAppendReply)
            assert reply.Err == b"OK"

    run(main())


def test_mypy_checks_handlers_served_through_a_typed_stub(tmp_path: Path) -> None:
    """Stub.serve(provider, handlers) makes mypy hold the handlers to the stub's Protocol."""
    source = """
from kvapi import kvserver_rpc_pb2 as kv
from kvapi.stubs import KvServerRpc
from kvserver.raft_rpc import RaftRpc
from kvserver.raft_transport_pb2 import DeliverReply
from kvserver.service import KVService
from rpc import RpcController, RpcProvider


class WrongGet(KVService):
    async def Get(self, request: kv.ScanArgs, controller: RpcController) -> kv.GetReply:
        return kv.GetReply()


class NoScan:
    async def Get(self, request: kv.GetArgs, controller: RpcController) -> kv.GetReply:
        return kv.GetReply()


def serve(provider: RpcProvider, right: KVService, wrong: WrongGet, partial: NoScan) -> None:
    KvServerRpc.serve(provider, right)
    KvServerRpc.serve(provider, wrong)
    KvServerRpc.serve(provider, partial)


def deliver(request: kv.GetArgs, controller: RpcController) -> DeliverReply:
    return DeliverReply()


def serve_raft(provider: RpcProvider) -> None:
    RaftRpc.serve(provider, {"Deliver": deliver})
"""
    module = tmp_path / "handlers_check.py"
    module.write_text(source)
    out, _, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--disable-error-code=override", str(module)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 3, out
    assert all('"serve" of "TypedStub"' in e and '"KvServerRpcHandlers"' in e for e in errors[:2])
    assert 'TypedDict item "Deliver"' in errors[2]
    # The wrong handler, the partial one and the mistyped function; not the right one.
    assert [int(e.split(":")[1]) for e in errors] == [22, 23, 31]
