"""The servers a clerk talks to: where they are, the channels to them, and learning the members.

Theory of operation
-------------------
:class:`Connections` holds a :class:`clerk.members.ServerTable` (the servers by node index,
started from the addresses or test.conf given, then from what the cluster says) and one
:class:`rpc.RpcChannel` per address, opened on first use and kept until :meth:`Connections.close`:
however many clerks share the Connections and however often the members change, an address gets
one channel, and closing the Connections closes every one (a removed member's too: its address
may come back, and a channel without calls holds at most one idle socket).

Learning asks every server of :meth:`ServerTable.discovery` for ``nodeAdmin.MemberList`` at once,
each ask bounded by ``rpc_timeout``; it ends when the leader answers (its view is the newest), or
when every ask has ended, with the newest answer (:func:`clerk.members.newer`), which the table
adopts. A server that does not serve nodeAdmin (or is down) simply does not count. One learning
runs at a time per Connections: the clerks that want one meanwhile wait for the same, and one for
a cause starts at most every 0.5 s. A clerk asks for one with :meth:`Connections.learn` when a
leader hint names a server it does not ask, or when a whole round of asks failed, and waits at
most one rpc timeout, within its operation's deadline; the learning goes on in the background if
it takes longer. :meth:`Connections.tick`, called as each operation starts, starts a routine
learning in the background every ``refresh_every`` seconds, never waited for: no operation pays
an extra round trip for it.

Each clerk has a :class:`ClerkServers`, its side of the (maybe shared) Connections: it makes those
calls, and copies the table's servers and leader into the clerk's
:class:`~clerk.core.ClerkCore` whenever the table's version moved, re-aiming an operation under
way at the leader the list named, since the server it was going to ask may have been removed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from clerk.core import Attempt, ClerkCore
from clerk.members import (
    Address,
    LearnSchedule,
    MemberList,
    ServerTable,
    newer,
    parse_member_list,
)
from kvapi.admin_pb2 import MemberListReply, MemberListRequest
from kvapi.codes import Err
from kvapi.config import format_address, load_test_conf
from kvapi.stubs import NodeAdmin
from rpc import RpcChannel, RpcConnectionError, RpcError

__all__ = ["DEFAULT_REFRESH_EVERY", "ClerkServers", "Connections", "Servers", "resolve_servers"]

Servers = Sequence[tuple[str, int]] | str | os.PathLike[str]
"""Server addresses: a list of (host, port) in node order, or the path of a ``test.conf``."""

DEFAULT_REFRESH_EVERY = 5.0
"""Seconds between routine refreshes of the member list."""
_MIN_LEARN_GAP_S = 0.5  # between learnings for a cause: a hint learning cannot resolve recurs


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
    """The servers of one cluster and one long-lived channel per server, to share among clerks.

    ``AsyncClerk(connections)`` uses these instead of opening its own and leaves them open when
    it closes; close them with :meth:`close` (or ``async with``) after the clerks. ``servers``
    is where to start: ``node<i>`` of a test.conf (or the i-th address) is taken for node
    index i until the cluster's member list says otherwise. ``rpc_timeout`` bounds one ask for
    the member list, ``refresh_every`` (seconds) spaces the routine ones. Create and use on one
    event loop.
    """

    def __init__(
        self,
        servers: Servers,
        *,
        connect_timeout: float = 0.5,
        rpc_timeout: float = 1.0,
        refresh_every: float = DEFAULT_REFRESH_EVERY,
    ) -> None:
        if connect_timeout <= 0 or rpc_timeout <= 0:
            raise ValueError("connect_timeout and rpc_timeout must be positive")
        self.table = ServerTable(resolve_servers(servers))
        """The servers by node index, as last learned; the clerks sharing these read it."""
        self._connect_timeout = connect_timeout
        self._rpc_timeout = rpc_timeout
        self._schedule = LearnSchedule(refresh_every, min(_MIN_LEARN_GAP_S, refresh_every))
        self._channels: dict[Address, RpcChannel] = {}
        self._learning: asyncio.Task[None] | None = None
        self._closed = False

    def channel(self, address: Address) -> RpcChannel:
        """The channel to ``address``, opened on first use; after :meth:`close`, calls fail
        with RpcConnectionError, on a new address as on a closed channel."""
        channel = self._channels.get(address)
        if channel is None:
            if self._closed:
                raise RpcConnectionError(f"channel to {format_address(address)} is closed")
            channel = RpcChannel(*address, connect_timeout=self._connect_timeout, backoff_max=0.5)
            self._channels[address] = channel
        return channel

    def tick(self) -> None:
        """Start a routine learning in the background if one is due (never waited for)."""
        loop = asyncio.get_running_loop()
        if self._learning is None and not self._closed and self._schedule.routine(loop.time()):
            self._start_learning(loop)

    async def learn(self, wait: float) -> None:
        """Learn the members now, unless a learning just started (then: that one), and wait
        for it at most ``wait`` seconds; a longer learning goes on in the background."""
        loop = asyncio.get_running_loop()
        if self._learning is None:
            if self._closed or not self._schedule.for_cause(loop.time()):
                return
            self._start_learning(loop)
        assert self._learning is not None
        # asyncio.wait neither cancels the shared learning at the timeout nor when the
        # waiting operation is cancelled.
        await asyncio.wait([self._learning], timeout=max(0.0, wait))

    async def close(self) -> None:
        """Stop learning and close every channel; calls still running on them fail."""
        self._closed = True
        if self._learning is not None:
            self._learning.cancel()
            await asyncio.gather(self._learning, return_exceptions=True)
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- learning ------------------------------------------------------------------------------

    def _start_learning(self, loop: asyncio.AbstractEventLoop) -> None:
        self._schedule.started(loop.time())
        self._learning = loop.create_task(self._learn())

    async def _learn(self) -> None:
        try:
            listed = await self._ask_members(self.table.discovery())
            if listed is not None:
                self.table.adopt(listed)
        finally:
            self._learning = None

    async def _ask_members(self, addresses: list[Address]) -> MemberList | None:
        """Ask every address for the member list at once: the leader's answer as soon as it
        comes, else the newest of all answers (None: nobody answered)."""
        asks = {asyncio.create_task(self._member_list(address)): address for address in addresses}
        pending = set(asks)
        best: MemberList | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for ask in done:
                    listed = ask.result()
                    if listed is None:
                        continue
                    if listed.leader_address == asks[ask]:
                        return listed
                    best = newer(best, listed)
            return best
        finally:
            for ask in pending:
                ask.cancel()

    async def _member_list(self, address: Address) -> MemberList | None:
        try:
            reply: MemberListReply = await NodeAdmin.MemberList.call(
                self.channel(address), MemberListRequest(), timeout=self._rpc_timeout
            )
        except RpcError:  # down, unreachable, or serving no nodeAdmin: it does not count
            return None
        return parse_member_list(reply) if reply.Err == Err.OK.wire else None


class ClerkServers:
    """One clerk's side of (maybe shared) :class:`Connections`: keeps the clerk's core asking
    the table's servers, and learns when the clerk's asks show the table is out of date."""

    def __init__(self, connections: Connections, core: ClerkCore, rpc_timeout: float) -> None:
        self._connections = connections
        self._table = connections.table
        self._core = core
        self._rpc_timeout = rpc_timeout
        self._synced = -1  # the table version the core's servers were copied from
        self._sync()

    def start(self) -> Attempt:
        """Begin an operation's attempt (and a routine learning, when one is due)."""
        self._connections.tick()
        self._sync()
        return self._core.start()

    def aim(self, attempt: Attempt) -> Address:
        """The address of the server ``attempt`` asks next. When the servers changed since the
        last ask, that is the leader the member list named (or the cached one): the server the
        attempt was going to may be gone."""
        if self._sync():
            attempt.restart()
        return self._table.addresses[attempt.server]

    async def next_server(self, attempt: Attempt, hint: int | None, deadline: float) -> int:
        """Move ``attempt`` on after a failed ask (``hint``: the server a wrong-leader reply
        named); the delay in ms before the next ask. Learns the members first when the hint
        names a server the core does not ask, and after a whole round failed."""
        if hint is not None and hint not in self._core.servers:
            await self._learn(deadline)
            self._sync()
        rounds = attempt.rounds_failed
        delay = attempt.on_failure() if hint is None else attempt.on_wrong_leader(hint)
        if attempt.rounds_failed > rounds:
            await self._learn(deadline)
        return delay

    async def _learn(self, deadline: float) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        await self._connections.learn(min(self._rpc_timeout, remaining))

    def _sync(self) -> bool:
        """Copy the table's rotation into the core if it changed; whether it did."""
        if self._synced == self._table.version:
            return False
        self._core.set_servers(self._table.rotation, self._table.leader)
        self._synced = self._table.version
        return True
