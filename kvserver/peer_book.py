"""Whom a node talks to: one :class:`PeerSender` per peer of the configuration, kept in step
with membership changes.

Theory of operation
-------------------
The peers are the members of two configurations: the one in force (the last in the log, thesis
4.1: a new member is fed at once) and the one applied (committed). A member that the newest
configuration removed keeps its sender until the removal is applied here: a leader that removes
itself leads, and needs its followers' answers, until that change commits (thesis 4.2.2).

Addresses come from the configurations (every ConfChange carries them); a member of a data
directory written before addresses were kept is found in ``fallback`` (test.conf). A member
whose address changed gets a new channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from kvapi.config import ConfigError, parse_address
from kvapi.nodes import node_name
from kvserver.peer_sender import PeerSender
from raftcore import Membership
from raftcore.raftpb_pb2 import Message

__all__ = ["PeerBook"]

_log = logging.getLogger(__name__)

Address = tuple[str, int]


class PeerBook:
    """The senders of one node, by peer Raft id."""

    def __init__(
        self,
        self_id: int,
        fallback: Mapping[int, Address],
        open_sender: Callable[[int, Address], PeerSender],
    ) -> None:
        """``open_sender(peer, address)`` makes the sender of a peer that needs one."""
        self._self_id = self_id
        self._fallback = dict(fallback)
        self._open = open_sender
        self._senders: dict[int, tuple[Address, PeerSender]] = {}
        self._addresses: dict[int, Address] = {}
        self._seen: tuple[Membership, Membership] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def address_of(self, member: int) -> Address | None:
        """Where ``member`` is reached (None: no configuration or test.conf names it)."""
        return self._addresses.get(member) or self._fallback.get(member)

    def sender(self, peer: int) -> PeerSender | None:
        """The sender of ``peer``, if it is a peer now."""
        entry = self._senders.get(peer)
        return entry[1] if entry is not None else None

    def sync(self, latest: Membership, applied: Membership) -> None:
        """Open senders for new peers, close those of members gone from both configurations."""
        if self._seen is not None and self._seen[0] is latest and self._seen[1] is applied:
            return
        self._seen = (latest, applied)
        for source in (applied, latest):  # the newest address wins
            for member, text in source.addresses.items():
                try:
                    self._addresses[member] = parse_address(text)
                except ConfigError:
                    _log.error("ignoring the bad address of %s: %s", node_name(member), text)
        wanted = {*latest.members, *applied.members} - {self._self_id}
        for peer in [p for p in self._senders if p not in wanted]:
            self._close(peer)
        for peer in wanted:
            address = self.address_of(peer)
            if address is None:
                _log.error("no address for %s: its messages are dropped", node_name(peer))
                continue
            current = self._senders.get(peer)
            if current is not None and current[0] == address:
                continue
            if current is not None:
                self._close(peer)
            self._senders[peer] = (address, self._open(peer, address))

    def _close(self, peer: int) -> None:
        _, sender = self._senders.pop(peer)
        task = asyncio.get_running_loop().create_task(sender.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def send(self, messages: list[Message]) -> None:
        """Hand each message to its peer's sender. A peer no configuration names yet gets one
        if its address is known (a joining node answering the leader that added it, before
        the entry that did so reaches it); a message to nobody known is dropped."""
        by_peer: dict[int, list[Message]] = {}
        for m in messages:
            by_peer.setdefault(m.to, []).append(m)
        for peer, batch in by_peer.items():
            entry = self._senders.get(peer)
            if entry is None:
                address = self.address_of(peer)
                if address is None:
                    continue
                entry = self._senders[peer] = (address, self._open(peer, address))
            entry[1].send(batch)

    @property
    def held_bytes(self) -> int:
        """The most bytes queued or in flight for any one peer."""
        return max((sender.held_bytes for _, sender in self._senders.values()), default=0)

    async def drain(self, timeout: float) -> None:
        """Wait until every queued message left (answered or failed), at most ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.held_bytes and loop.time() < deadline:
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Close every sender and wait for the ones being closed."""
        for peer in list(self._senders):
            self._close(peer)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
