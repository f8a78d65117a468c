"""RpcChannel behaviour: lazy connect, multiplexing, deadlines, cancel, reconnect, lost peers."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from rpc_testkit import KV_SERVICE, KvHandlers, kv_handler_map, run, serving

from kvapi import kvserver_rpc_pb2 as kv
from kvapi.stubs import KvServerRpc
from rpc import (
    FrameTooLargeError,
    Rpc,
    RpcBadResponseError,
    RpcCancelledError,
    RpcChannel,
    RpcConnectionError,
    RpcController,
    RpcLocalError,
    RpcProvider,
    RpcRemoteError,
    RpcTimeoutError,
    Status,
)
from rpc.codec import RequestDecoder, encode_response
from rpc.stub import TypedStub

ROOT = Path(__file__).resolve().parents[2]


def get(channel: RpcChannel, key: bytes, **kwargs: object) -> Awaitable[kv.GetReply]:
    return channel.call("kvServerRpc", "Get", kv.GetArgs(Key=key), kv.GetReply, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def raw_server(
    on_request: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A hand-written peer for misbehaviour our provider would never show."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await on_request(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> int:
    """Read one framed request; return its call id."""
    decoder = RequestDecoder()
    while True:
        frames = decoder.feed(await reader.read(4096))
        if frames:
            return frames[0].header.call_id


def test_error_classes_split_local_and_remote() -> None:
    assert issubclass(RpcTimeoutError, RpcLocalError) and issubclass(RpcTimeoutError, TimeoutError)
    assert issubclass(RpcConnectionError, RpcLocalError)
    assert issubclass(RpcConnectionError, ConnectionError)
    assert not issubclass(RpcRemoteError, RpcLocalError)
    assert RpcRemoteError(Status.BAD_REQUEST, "x").status is Status.BAD_REQUEST


def test_connects_lazily_and_multiplexes_one_connection() -> None:
    async def main() -> None:
        async with serving() as (provider, port), RpcChannel("127.0.0.1", port) as channel:
            await asyncio.sleep(0.05)
            assert not provider._connections and not channel.connected
            replies = await asyncio.gather(*(get(channel, b"sleep:0.05") for _ in range(100)))
            assert len(replies) == 100
            assert len(provider._connections) == 1

    run(main())


def test_timeout_fails_the_call_and_the_server_drops_the_work() -> None:
    handlers = KvHandlers()

    async def main() -> None:
        async with serving(handlers) as (_, port), RpcChannel("127.0.0.1", port) as channel:
            loop = asyncio.get_running_loop()
            controller = RpcController()
            start = loop.time()
            with pytest.raises(RpcTimeoutError):
                await get(channel, b"sleep:5", timeout=0.2, controller=controller)
            assert 0.15 < loop.time() - start < 1.0
            assert controller.failed() and "timed out" in controller.error_text()
            await asyncio.sleep(0.1)
            assert handlers.cancelled == [b"sleep:5"]
            # the connection is still good, and late replies are ignored
            assert (await get(channel, b"sleep:0.01", timeout=1)).Err == b"OK"

    run(main())


def test_default_timeout_applies() -> None:
    async def main() -> None:
        async with (
            serving() as (_, port),
            RpcChannel("127.0.0.1", port, default_timeout=0.1) as channel,
        ):
            with pytest.raises(RpcTimeoutError):
                await get(channel, b"sleep:5")

    run(main())


def test_controller_cancel_really_cancels() -> None:
    handlers = KvHandlers()

    async def main() -> None:
        async with serving(handlers) as (_, port), RpcChannel("127.0.0.1", port) as channel:
            controller = RpcController()
            call = asyncio.ensure_future(get(channel, b"sleep:5", controller=controller))
            await asyncio.sleep(0.05)
            controller.cancel()
            with pytest.raises(RpcCancelledError):
                await asyncio.wait_for(call, 0.5)
            assert controller.is_cancelled() and controller.failed()
            # the cancel reached the server, which stopped the handler
            await asyncio.sleep(0.1)
            assert handlers.cancelled == [b"sleep:5"]
            # cancelled before it starts: fails at once
            with pytest.raises(RpcCancelledError):
                await get(channel, b"x", controller=controller)
            controller.reset()
            assert not controller.failed() and not controller.is_cancelled()
            await get(channel, b"x", controller=controller)
            assert not controller.failed()
            assert channel._conn is not None and not channel._conn.pending

    run(main())


def test_controller_records_remote_status() -> None:
    async def main() -> None:
        async with serving() as (_, port), RpcChannel("127.0.0.1", port) as channel:
            controller = RpcController()
            with pytest.raises(RpcRemoteError):
                await get(channel, b"raise", controller=controller)
            assert controller.status is Status.HANDLER_ERROR
            assert "boom" in controller.error_text()

    run(main())


def test_task_cancellation_cleans_up_and_cancels_the_server_work() -> None:
    handlers = KvHandlers()

    async def main() -> None:
        async with serving(handlers) as (_, port), RpcChannel("127.0.0.1", port) as channel:
            call = asyncio.ensure_future(get(channel, b"sleep:5"))
            await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert channel._conn is not None and not channel._conn.pending
            await asyncio.sleep(0.1)
            assert handlers.cancelled == [b"sleep:5"]
            assert (await get(channel, b"x", timeout=1)).Err == b"ErrNoKey"

    run(main())


def test_pending_calls_fail_at_once_when_the_peer_disappears() -> None:
    async def abort_after_request(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        await asyncio.sleep(0.1)
        writer.transport.abort()

    async def main() -> None:
        async with (
            raw_server(abort_after_request) as port,
            RpcChannel("127.0.0.1", port) as channel,
        ):
            loop = asyncio.get_running_loop()
            start = loop.time()
            calls = [get(channel, b"k", timeout=10) for _ in range(5)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, RpcConnectionError) for r in results)
            assert loop.time() - start < 1.0

    run(main())


def test_pending_calls_fail_at_once_when_the_server_process_is_killed() -> None:
    script = (
        "import asyncio, sys\n"
        "from rpc_testkit import serving\n"
        "async def main():\n"
        "    async with serving() as (_, port):\n"
        "        print(port, flush=True)\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    env_path = f"{ROOT}:{Path(__file__).parent}"
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": env_path},
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())

        async def main() -> None:
            async with RpcChannel("127.0.0.1", port) as channel:
                assert (await get(channel, b"x", timeout=5)).Err == b"ErrNoKey"
                call = asyncio.ensure_future(get(channel, b"sleep:30", timeout=20))
                await asyncio.sleep(0.1)
                loop = asyncio.get_running_loop()
                start = loop.time()
                proc.send_signal(signal.SIGKILL)
                with pytest.raises(RpcConnectionError):
                    await call
                assert loop.time() - start < 2.0

        run(main())
    finally:
        proc.kill()
        proc.wait(timeout=5)
        assert proc.stdout is not None
        proc.stdout.close()


def test_reconnects_with_capped_backoff_after_the_server_comes_back() -> None:
    async def main() -> None:
        provider = RpcProvider()
        provider.register(KV_SERVICE, kv_handler_map(KvHandlers()))
        _, port = await provider.start()
        channel = RpcChannel("127.0.0.1", port, backoff_initial=0.05, backoff_max=0.2)
        assert (await get(channel, b"x", timeout=1)).Err == b"ErrNoKey"
        await provider.close()
        with pytest.raises(RpcConnectionError):  # the established connection was closed
            await get(channel, b"x", timeout=1)
        waits = []
        for _ in range(5):
            with pytest.raises(RpcConnectionError, match="cannot connect"):
                await get(channel, b"x", timeout=1)
            # right after a failed attempt the channel fails fast, saying how long it waits
            with pytest.raises(RpcConnectionError, match="next attempt in") as info:
                await get(channel, b"x", timeout=1)
            found = re.search(r"next attempt in ([0-9.]+)s", str(info.value))
            assert found is not None
            waits.append(float(found.group(1)))
            await asyncio.sleep(waits[-1] + 0.01)
        # doubling from 0.05 s, capped at 0.2 s
        assert waits[0] <= 0.05 and 0.15 < waits[-1] <= 0.2 and max(waits) <= 0.2
        provider = RpcProvider()
        provider.register(KV_SERVICE, kv_handler_map(KvHandlers()))
        await provider.start("127.0.0.1", port)
        await asyncio.sleep(0.21)
        assert (await get(channel, b"x", timeout=1)).Err == b"ErrNoKey"
        await channel.close()
        await provider.close()

    run(main())


def test_fails_fast_during_backoff_then_retries() -> None:
    async def main() -> None:
        async with raw_server(read_request) as port:  # reserve a port, then free it
            pass
        channel = RpcChannel("127.0.0.1", port, backoff_initial=0.3, backoff_max=1.0)
        with pytest.raises(RpcConnectionError, match="cannot connect"):
            await get(channel, b"x")
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(RpcConnectionError, match="next attempt in"):
            await get(channel, b"x")
        assert loop.time() - start < 0.05
        await channel.close()

    run(main())


def test_oversize_request_is_refused_locally_and_the_connection_survives() -> None:
    async def main() -> None:
        async with (
            serving() as (_, port),
            RpcChannel("127.0.0.1", port, max_frame_size=1000) as channel,
        ):
            put = kv.PutAppendArgs(Key=b"k", Value=b"v" * 2000, Op=b"Put")
            with pytest.raises(FrameTooLargeError):
                await channel.call("kvServerRpc", "PutAppend", put, kv.PutAppendReply)
            assert (await get(channel, b"k")).Err == b"ErrNoKey"

    run(main())


def test_oversize_response_becomes_an_error_status() -> None:
    async def main() -> None:
        async with (
            serving(max_frame_size=1000) as (_, port),
            RpcChannel("127.0.0.1", port) as channel,
        ):
            with pytest.raises(RpcRemoteError, match="response too large") as info:
                await get(channel, b"big:5000")
            assert info.value.status is Status.HANDLER_ERROR
            assert len((await get(channel, b"big:500")).Value) == 500

    run(main())


def test_reply_that_does_not_parse_is_a_bad_response() -> None:
    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        call_id = await read_request(reader)
        writer.write(encode_response(call_id, Status.OK, b"", b"\x0a\x09x"))
        call_id = await read_request(reader)
        writer.write(encode_response(call_id, 99, b"future", b""))  # type: ignore[arg-type]
        await reader.read()

    async def main() -> None:
        async with raw_server(answer_garbage) as port, RpcChannel("127.0.0.1", port) as channel:
            with pytest.raises(RpcBadResponseError):
                await get(channel, b"x", timeout=2)
            with pytest.raises(RpcRemoteError, match="unknown status 99"):
                await get(channel, b"x", timeout=2)

    run(main())


def test_malformed_reply_stream_fails_pending_calls() -> None:
    async def answer_nonsense(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"\xff\xff\xff\xff\xff\xff")
        await reader.read()

    async def main() -> None:
        async with raw_server(answer_nonsense) as port, RpcChannel("127.0.0.1", port) as channel:
            with pytest.raises(RpcConnectionError, match="bad reply stream"):
                await get(channel, b"x", timeout=2)

    run(main())


def test_closed_channel_refuses_calls_and_fails_pending_ones() -> None:
    async def main() -> None:
        async with serving() as (_, port):
            channel = RpcChannel("127.0.0.1", port)
            call = asyncio.ensure_future(get(channel, b"sleep:5"))
            await asyncio.sleep(0.05)
            await channel.close()
            with pytest.raises(RpcConnectionError):
                await call
            with pytest.raises(RpcConnectionError, match="closed"):
                await get(channel, b"x")

    run(main())


def test_close_during_connect_fails_the_waiting_calls() -> None:
    class SlowConnect(RpcChannel):
        async def _open(self, loop: asyncio.AbstractEventLoop) -> Any:
            await asyncio.sleep(10)

    async def main() -> None:
        channel = SlowConnect("127.0.0.1", 1)
        calls = [asyncio.ensure_future(get(channel, b"x")) for _ in range(3)]
        await asyncio.sleep(0.05)
        await channel.close()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, RpcConnectionError) for r in results), results

    run(main())


def test_stub_checks_request_types_and_method_names() -> None:
    async def main() -> None:
        async with serving() as (_, port), RpcChannel("127.0.0.1", port) as channel:
            stub = KvServerRpc(channel)
            with pytest.raises(TypeError, match=r"takes raftKVRpcProctoc\.GetArgs"):
                stub.Get(kv.PutAppendArgs())  # type: ignore[arg-type]
            with pytest.raises(AttributeError, match="NoSuchMethod"):
                _ = stub.NoSuchMethod  # type: ignore[attr-defined]
            reply = await stub.Get(kv.GetArgs(Key=b"big:3"), timeout=1)
            assert reply == kv.GetReply(Err=b"OK", Value=b"vvv")
            # The class's method is the unbound Rpc: the channel is given per call.
            again = await KvServerRpc.Get.call(channel, kv.GetArgs(Key=b"big:2"), timeout=1)
            assert again == kv.GetReply(Err=b"OK", Value=b"vv")

    run(main())


def test_a_stub_that_drifts_from_its_service_descriptor_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"lacks methods \['Get', 'Scan'"):

        class Missing(TypedStub[object]):
            SERVICE = KV_SERVICE
            PutAppend = Rpc(kv.PutAppendArgs, kv.PutAppendReply)
            Delete = Rpc(kv.DeleteArgs, kv.DeleteReply)
            PutIfAbsent = Rpc(kv.PutIfAbsentArgs, kv.PutIfAbsentReply)
            Update = Rpc(kv.UpdateArgs, kv.UpdateReply)
            CompareAndSwap = Rpc(kv.CompareAndSwapArgs, kv.CompareAndSwapReply)

    def methods() -> dict[str, Any]:
        return {
            name: Rpc(rpc.request_type, rpc.reply_type)
            for name in KV_SERVICE.methods_by_name
            for rpc in [getattr(KvServerRpc, name)]
        }

    with pytest.raises(TypeError, match=r"Get takes raftKVRpcProctoc\.GetArgs and answers"):
        type(
            "WrongTypes",
            (TypedStub,),
            {**methods(), "SERVICE": KV_SERVICE, "Get": Rpc(kv.GetArgs, kv.ScanReply)},
        )
    with pytest.raises(TypeError, match="has no method 'Nope'"):
        type(
            "Extra",
            (TypedStub,),
            {**methods(), "SERVICE": KV_SERVICE, "Nope": Rpc(kv.GetArgs, kv.GetReply)},
        )


def test_reset_drops_the_connection_and_its_calls_and_the_next_call_reconnects() -> None:
    """reset() is for a caller that found the peer not reading: the connection is aborted at
    once (its unwritten bytes dropped), its pending calls fail, the next call connects anew."""

    async def main() -> None:
        async with serving() as (_, port), RpcChannel("127.0.0.1", port) as channel:
            assert (await get(channel, b"a", timeout=1)).Err == b"ErrNoKey"
            pending = asyncio.ensure_future(get(channel, b"sleep:5", timeout=5))
            await asyncio.sleep(0.05)
            first = channel._conn
            channel.reset()
            assert not channel.connected
            with pytest.raises(RpcConnectionError, match="reset"):
                await pending
            assert (await get(channel, b"b", timeout=1)).Err == b"ErrNoKey"
            assert channel._conn is not first and channel.connected
            channel.reset()
            channel.reset()  # without a connection: nothing to do

    run(main())


@pytest.mark.parametrize("uvloop", [False, True])
def test_connections_drop_when_the_peer_acknowledges_nothing_for_unacked_timeout(
    uvloop: bool,
) -> None:
    # A silent partition must end the connection (then a fresh connect once it heals) rather
    # than leave calls behind TCP's retransmission backoff: tests/torture showed a healed link
    # idle for seconds without it.
    async def main() -> tuple[int, int]:
        async with serving() as (_, port):
            values = []
            for timeout in (2.0, 0.25):
                async with RpcChannel("127.0.0.1", port, unacked_timeout=timeout) as channel:
                    await get(channel, b"k", timeout=5)
                    assert channel._conn is not None and channel._conn.transport is not None
                    sock = channel._conn.transport.get_extra_info("socket")
                    values.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
            return values[0], values[1]

    assert run(main(), uvloop=uvloop) == (2000, 250)
