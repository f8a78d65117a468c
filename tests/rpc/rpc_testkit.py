"""Shared helpers for the rpc tests: a small kvServerRpc service, a runner, raw-socket access."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from kvapi import kvserver_rpc_pb2 as kv
from rpc import RpcController, RpcProvider

T = TypeVar("T")

KV_SERVICE = kv.DESCRIPTOR.services_by_name["kvServerRpc"]


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0, *, uvloop: bool = False) -> T:
    """Run a test coroutine on a fresh loop (uvloop when asked), bounded by ``timeout``."""
    if uvloop:
        import uvloop as uv

        with asyncio.Runner(loop_factory=uv.new_event_loop) as runner:
            return runner.run(asyncio.wait_for(coro, timeout))
    return asyncio.run(asyncio.wait_for(coro, timeout))


class KvHandlers:
    """A tiny in-memory kvServerRpc: Put/Append/Get, plus knobs for misbehaviour.

    A Get of key ``sleep:<seconds>`` sleeps first; ``raise`` raises; ``fail`` uses
    ``controller.set_failed``; ``wrong-type`` returns the wrong message; ``big:<n>`` answers with
    an n-byte value. ``cancelled`` records the keys whose handlers were cancelled.
    """

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.cancelled: list[bytes] = []
        self.started: list[bytes] = []

    async def PutAppend(self, request: kv.PutAppendArgs, controller: RpcController) -> Any:
        if request.Op == b"Append":
            self.data[request.Key] = self.data.get(request.Key, b"") + request.Value
        else:
            self.data[request.Key] = request.Value
        return kv.PutAppendReply(Err=b"OK")

    async def Get(self, request: kv.GetArgs, controller: RpcController) -> Any:
        key = request.Key
        self.started.append(key)
        if key.startswith(b"sleep:"):
            try:
                await asyncio.sleep(float(key[6:]))
            except asyncio.CancelledError:
                self.cancelled.append(key)
                raise
            return kv.GetReply(Err=b"OK", Value=key)
        if key == b"raise":
            raise RuntimeError("boom")
        if key == b"fail":
            controller.set_failed("no such thing")
            return kv.GetReply()
        if key == b"wrong-type":
            return kv.PutAppendReply(Err=b"OK")
        if key == b"deadline":
            return kv.GetReply(Err=b"OK", Value=repr(controller.deadline).encode())
        if key.startswith(b"big:"):
            return kv.GetReply(Err=b"OK", Value=b"v" * int(key[4:]))
        if key in self.data:
            return kv.GetReply(Err=b"OK", Value=self.data[key])
        return kv.GetReply(Err=b"ErrNoKey")


def kv_handler_map(handlers: KvHandlers) -> dict[str, Any]:
    """Handlers for every kvServerRpc method: KvHandlers' own, and a raising one for methods the
    KV service gained after the original (these tests only exercise the original's two)."""

    async def unimplemented(request: Any, controller: RpcController) -> Any:
        raise NotImplementedError("not served by the rpc tests")

    return {m.name: getattr(handlers, m.name, unimplemented) for m in KV_SERVICE.methods}


@contextlib.asynccontextmanager
async def serving(
    handlers: KvHandlers | None = None, **options: Any
) -> AsyncIterator[tuple[RpcProvider, int]]:
    """A started RpcProvider serving KvHandlers on 127.0.0.1 (free port); closed on exit."""
    provider = RpcProvider(**options)
    provider.register(
        KV_SERVICE, kv_handler_map(handlers if handlers is not None else KvHandlers())
    )
    _, port = await provider.start("127.0.0.1", 0)
    try:
        yield provider, port
    finally:
        await provider.close(grace=0.5)


async def read_until_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes the connection (TimeoutError if it does not)."""
    async with asyncio.timeout(timeout):
        return await reader.read()


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a raw test connection, ignoring a peer that already reset it."""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
