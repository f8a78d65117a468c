"""Asking every node of a cluster for its ``nodeAdmin.Status``, for ``raftkv status`` and
raftCoreRun's supervisor."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from kvapi.admin_pb2 import StatusReply, StatusRequest
from kvapi.nodes import node_name
from kvapi.stubs import NodeAdmin
from rpc import RpcChannel, RpcError

__all__ = [
    "ClusterStartError",
    "NodeStatus",
    "StatusPoller",
    "format_table",
    "leader_of",
    "reported_leader",
    "wait_for_leader",
]


@dataclass(frozen=True)
class NodeStatus:
    """One node's answer: ``index`` is its place in test.conf (node<index>); ``reply`` is None
    when the node could not be reached, and ``error`` then says why."""

    index: int
    address: tuple[str, int]
    reply: StatusReply | None
    error: str = ""


class StatusPoller:
    """Keeps one channel per node and asks all of them at once; use on one event loop.

    ``servers``: test.conf's addresses in node order, or node<i> -> address for a cluster whose
    members are not test.conf's."""

    def __init__(
        self,
        servers: Sequence[tuple[str, int]] | Mapping[int, tuple[str, int]],
        *,
        timeout: float = 1.0,
    ) -> None:
        by_index = servers if isinstance(servers, Mapping) else dict(enumerate(servers))
        self.servers = dict(sorted(by_index.items()))
        self.timeout = timeout
        self._channels = {
            i: RpcChannel(
                host, port, connect_timeout=timeout, backoff_initial=0.05, backoff_max=0.2
            )
            for i, (host, port) in self.servers.items()
        }

    async def poll(self) -> list[NodeStatus]:
        """Every node's status, in node order; never raises for an unreachable node."""
        return list(await asyncio.gather(*(self._ask(i) for i in self.servers)))

    async def _ask(self, index: int) -> NodeStatus:
        address = self.servers[index]
        try:
            reply = await NodeAdmin.Status.call(
                self._channels[index], StatusRequest(), timeout=self.timeout
            )
        except RpcError as exc:
            return NodeStatus(index, address, None, str(exc) or type(exc).__name__)
        return NodeStatus(index, address, reply)

    async def close(self) -> None:
        """Close every channel."""
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))


def leader_of(
    statuses: Sequence[NodeStatus], *, among: Collection[int] | None = None, above_term: int = 0
) -> tuple[int, int] | None:
    """(test.conf index, term) of the reachable node that is leader in the highest term, if any
    (only nodes in ``among``, only terms above ``above_term``)."""
    leaders = [
        (s.reply.Term, s.index)
        for s in statuses
        if s.reply is not None
        and s.reply.Role == b"leader"
        and s.reply.Term > above_term
        and (among is None or s.index in among)
    ]
    if not leaders:
        return None
    term, index = max(leaders)
    return index, term


def reported_leader(statuses: Sequence[NodeStatus]) -> tuple[int, int] | None:
    """(node index, term) of the leader the reachable nodes report in the highest term, when
    none of them is that leader itself (a node added later, not polled here)."""
    reports = [
        (s.reply.Term, s.reply.Leader - 1)
        for s in statuses
        if s.reply is not None and s.reply.Leader > 0
    ]
    if not reports:
        return None
    term, index = max(reports)
    return index, term


class ClusterStartError(RuntimeError):
    """A node of the cluster being waited for has exited."""


async def wait_for_leader(
    servers: Sequence[tuple[str, int]] | Mapping[int, tuple[str, int]],
    timeout: float,
    *,
    alive: Sequence[subprocess.Popen[bytes]] = (),
    among: Collection[int] | None = None,
    above_term: int = 0,
    interval: float = 0.02,
) -> tuple[int, int] | None:
    """(node index, term) of a leader once one is elected (``servers`` as for
    :class:`StatusPoller`; see :func:`leader_of` for ``among`` and ``above_term``), None if
    none within ``timeout`` seconds. Raises
    ClusterStartError as soon as one of the ``alive`` processes (node i at place i) has exited."""
    poller = StatusPoller(servers, timeout=0.3)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            for i, proc in enumerate(alive):
                if proc.poll() is not None:
                    raise ClusterStartError(f"node{i} exited with code {proc.returncode}")
            leader = leader_of(await poller.poll(), among=among, above_term=above_term)
            if leader is not None:
                return leader
            await asyncio.sleep(interval)
        return None
    finally:
        await poller.close()


_COLUMNS = (
    "node",
    "address",
    "reachable",
    "role",
    "term",
    "leader",
    "commit",
    "applied",
    "last",
    "snapshot",
    "member",
)


def format_table(statuses: Sequence[NodeStatus]) -> str:
    """A fixed-width table, one row per node; an unreachable node shows only its address."""
    rows = [list(_COLUMNS)]
    for s in statuses:
        host, port = s.address
        row = [f"node{s.index}", f"{host}:{port}"]
        r = s.reply
        if r is None:
            row += ["no"] + ["-"] * 8
        else:
            leader = node_name(r.Leader) if r.Leader else "-"
            row += ["yes", r.Role.decode(), str(r.Term), leader, str(r.Commit), str(r.Applied)]
            member = ("learner" if r.Learner else "voter") if r.Member else "none"
            row += [str(r.LastIndex), str(r.SnapshotIndex), member]
        rows.append(row)
    widths = [max(len(row[c]) for row in rows) for c in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
