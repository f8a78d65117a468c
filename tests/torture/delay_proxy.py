"""A delaying TCP proxy for the torture tier (this kernel has no netem to delay packets with).

Run in the bridge namespace::

    python delay_proxy.py --listen 10.1.2.253 --route 20001=10.1.2.2:7100 [--route ...]

Each ``--route LPORT=HOST:PORT`` listens on ``LPORT`` and forwards every connection to
``HOST:PORT``. Each chunk read from either side is written to the other side ``delay`` plus a
uniform ``[0, jitter)`` milliseconds after it was read, never before the chunk read before it on
that side (so the byte stream keeps its order, and delay never reorders). Standard input carries
the control: a line ``DELAY_MS JITTER_MS`` sets both for every chunk read from then on; its end
stops the proxy (so a test that dies leaves no proxy behind). It prints ``listening`` once every
port is open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys


class Delay:
    """The current delay and jitter, in seconds."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.jitter = 0.0
        self.rng = random.Random()

    def due(self, now: float, previous: float) -> float:
        return max(previous, now + self.delay + self.rng.uniform(0.0, self.jitter))


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Delay) -> None:
    """Copy ``reader`` to ``writer``, each chunk at its due time (see the module docstring)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    delivering = asyncio.create_task(deliver())
    previous = 0.0
    try:
        while True:
            data = await reader.read(65536)
            previous = delay.due(loop.time(), previous)
            await queue.put((previous, data))
            if not data:
                break
        await delivering
    except (ConnectionError, OSError):
        pass
    finally:
        delivering.cancel()
        writer.close()


async def serve(args: argparse.Namespace) -> None:
    delay = Delay()
    servers = []
    for route in args.route:
        lport, target = route.split("=")
        host, port = target.rsplit(":", 1)

        async def handle(
            client_r: asyncio.StreamReader,
            client_w: asyncio.StreamWriter,
            host: str = host,
            port: int = int(port),
        ) -> None:
            try:
                server_r, server_w = await asyncio.open_connection(host, port)
            except OSError:
                client_w.close()
                return
            await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))

        servers.append(await asyncio.start_server(handle, args.listen, int(lport)))
    print("listening", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        delay_ms, jitter_ms = (float(x) for x in line.split())
        delay.delay, delay.jitter = delay_ms / 1000, jitter_ms / 1000
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="a delaying TCP proxy")
    parser.add_argument("--listen", required=True, help="address to listen on")
    parser.add_argument("--route", action="append", default=[], help="LPORT=HOST:PORT")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
