"""PeerSender over a real connection: a call's deadline leaves a slow link time to carry it."""

from __future__ import annotations

import asyncio
import socket
import time

from kvserver.peer_sender import PeerSender
from raftcore.raftpb_pb2 import MSG_APPEND, Entry, Message
from rpc import RpcChannel

RATE = 2 << 20  # bytes per second the peer reads: a slow but working link


def test_a_large_append_crosses_a_link_slower_than_its_size_per_call_timeout() -> None:
    """One 7 MiB entry (commands up to 8 MiB are allowed) on a 2 MiB/s link needs 3.5 s, more
    than the 1 s call timeout. A timed-out call resets the connection (freeing what a peer that
    does not read left buffered), which also cuts such a frame short at every attempt, so the
    follower could never get past the entry: the deadline must grow with the bytes to carry."""
    size = 7 << 20

    async def main() -> tuple[int, int, list[str]]:
        carried = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal carried
            got = 0
            while chunk := await reader.read(64 << 10):
                got += len(chunk)
                carried = max(carried, got)
                await asyncio.sleep(len(chunk) / RATE)
            writer.close()

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # the link holds little
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = await asyncio.start_server(handle, sock=listener)
        failures: list[str] = []
        sender = PeerSender(
            2,
            RpcChannel("127.0.0.1", listener.getsockname()[1]),
            max_calls=4,
            call_timeout=1.0,
            on_failed=lambda peer, exc: failures.append(type(exc).__name__),
            on_delivered=lambda peer, reply: None,
            on_dropped=lambda peer: None,
        )
        m = Message(
            type=MSG_APPEND,
            to=2,
            sender=1,
            term=1,
            index=10,
            entries=[Entry(term=1, index=11, data=b"x" * size)],
        )
        try:
            sender.send([m])
            deadline = time.monotonic() + 8.0
            while carried < m.ByteSize() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return carried, m.ByteSize(), failures
        finally:
            await sender.close()
            server.close()
            await server.wait_closed()

    carried, frame, failures = asyncio.run(main())
    assert carried >= frame, f"the peer got {carried} of {frame} bytes; failed calls: {failures}"
