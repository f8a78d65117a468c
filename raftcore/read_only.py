"""The leader's queue of ReadIndex requests awaiting a heartbeat quorum (thesis section 6.4).

Theory of operation
-------------------
A read arriving at commit index ``c`` is safe to serve at ``c`` once the leader knows it was
still the leader *after* the read arrived: it tags a heartbeat round with the read's context and
waits for a quorum of acknowledgements carrying that context. Requests are queued in arrival
order, so a quorum for a later request also confirms every earlier one; all of them are released
together, each with the commit index it recorded.
"""

from __future__ import annotations

from collections import OrderedDict

from raftcore.ready import ReadState

__all__ = ["ReadOnly"]


class ReadOnly:
    """Pending read requests, keyed by their (unique) context, in arrival order."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: OrderedDict[bytes, tuple[int, set[int]]] = OrderedDict()

    def __contains__(self, context: bytes) -> bool:
        return context in self._pending

    def add_request(self, index: int, context: bytes, leader: int) -> None:
        """Queue a read of commit index ``index``; the leader's own acknowledgement counts."""
        self._pending[context] = (index, {leader})

    def recv_ack(self, sender: int, context: bytes) -> set[int] | None:
        """Record ``sender``'s heartbeat acknowledgement of ``context``; the acknowledgers so far,
        or None if no such request is pending."""
        request = self._pending.get(context)
        if request is None:
            return None
        request[1].add(sender)
        return request[1]

    def release_through(self, context: bytes) -> list[ReadState]:
        """Remove and return, in order, every request up to and including ``context``."""
        released: list[ReadState] = []
        while self._pending:
            ctx, (index, _) = self._pending.popitem(last=False)
            released.append(ReadState(index, ctx))
            if ctx == context:
                break
        return released

    def last_context(self) -> bytes:
        """Context of the newest pending request (b"" when none): heartbeats carry it, so a lost
        heartbeat round is retried by the next one."""
        return next(reversed(self._pending), b"")
