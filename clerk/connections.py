"""The servers a clerk talks to: their addresses, and channels many clerks may share."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from kvapi.config import load_test_conf
from rpc import RpcChannel

__all__ = ["Connections", "Servers", "resolve_servers"]

Servers = Sequence[tuple[str, int]] | str | os.PathLike[str]
"""Server addresses: a list of (host, port) in node order, or the path of a ``test.conf``."""


def resolve_servers(servers: Servers) -> list[tuple[str, int]]:
    """The (host, port) list ``servers`` denotes (reading the test.conf when given a path)."""
    if isinstance(servers, str | os.PathLike):
        return load_test_conf(servers)
    resolved = [(str(host), int(port)) for host, port in servers]
    if not resolved:
        raise ValueError("a clerk needs at least one server address")
    for host, port in resolved:
        if not host or not 1 <= port <= 65535:
            raise ValueError(f"bad server address {host!r}:{port}")
    return resolved


class Connections:
    """One long-lived channel per server of a cluster, to share among many clerks.

    ``AsyncClerk(connections)`` uses these channels instead of opening its own and leaves them
    open when it closes; close them with :meth:`close` (or ``async with``) after the clerks.
    Create and use on one event loop.
    """

    def __init__(self, servers: Servers, *, connect_timeout: float = 0.5) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.servers = resolve_servers(servers)
        self.channels = [
            RpcChannel(host, port, connect_timeout=connect_timeout, backoff_max=0.5)
            for host, port in self.servers
        ]

    async def close(self) -> None:
        """Close every channel; calls still running on them fail."""
        await asyncio.gather(*(channel.close() for channel in self.channels))

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
