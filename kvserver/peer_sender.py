"""Flow control between a node and one peer: a bounded queue and a few bounded calls in flight.

Theory of operation
-------------------
The Raft core already limits what it produces for a follower (one probe append at a time, a
window of unacknowledged appends while streaming), but a peer that stops reading (frozen, or a
cut link whose TCP connection stays open) still lets messages pile up in the runner: calls in
flight wait for their timeout, everything produced meanwhile waits in the queue, and when the
peer comes back its burst of heartbeat responses makes the leader send a fresh append from the
same index for each. So, per peer:

* The queue is bounded (:data:`MAX_QUEUED_BYTES`, :data:`MAX_QUEUED_MESSAGES`). A message that
  does not fit is dropped and the core is told the peer is unreachable, which stops streaming
  and falls back to probing (Raft treats the drop like any lost message and retransmits).
* A message that makes an older queued one useless replaces it in place: a heartbeat replaces
  the queued heartbeat (the newest read context acknowledges every older one), an append
  replaces queued appends of its term whose entries it covers, a snapshot chunk replaces the
  queued copy of the same chunk.
* A call carries at most :data:`MAX_CALL_BYTES` of messages (a message larger than that goes
  alone), so no frame comes near the RPC frame limit; at most ``max_calls`` are in flight.
* A call that times out resets the connection: the frames buffered for a peer that does not
  read are freed at once, and the next call opens a fresh connection instead of waiting behind
  stale bytes and TCP's retransmission backoff. A call's deadline is the call timeout plus the
  time its bytes and those of the calls ahead of it take at :data:`MIN_LINK_BYTES_PER_S`, so a
  big frame on a slow but working link is not cut short at every attempt.

What the node holds for one peer is therefore about ``MAX_QUEUED_BYTES + max_calls *
MAX_CALL_BYTES`` of messages (their encoded size; the frames being written count again).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from kvserver.raft_rpc import RaftRpc
from kvserver.raft_transport_pb2 import DeliverReply, MessageBatch
from raftcore.raftpb_pb2 import MSG_APPEND, MSG_HEARTBEAT, MSG_SNAPSHOT, Message
from rpc import RpcChannel, RpcError, RpcTimeoutError

__all__ = [
    "MAX_CALL_BYTES",
    "MAX_QUEUED_BYTES",
    "MAX_QUEUED_MESSAGES",
    "PeerQueue",
    "PeerSender",
]

MAX_QUEUED_BYTES = 8 << 20
"""Encoded bytes of appends and snapshot chunks one peer's queue holds before it drops them."""
MAX_QUEUED_MESSAGES = 4096
"""Messages one peer's queue holds before it drops them."""
MAX_CALL_BYTES = 2 << 20
"""Encoded bytes of messages one Deliver call carries (a larger single message goes alone)."""
MIN_LINK_BYTES_PER_S = 1 << 20
"""The slowest link a call waits for: its deadline grows by the bytes it and the calls before it
on the connection carry at this rate, so a timeout (which resets the connection) means a peer
that does not read, never a big frame still crossing a slow but working link."""

_BULKY = (MSG_APPEND, MSG_SNAPSHOT)


def _last_index(m: Message) -> int:
    return m.index + len(m.entries)


def _supersedes(new: Message, old: Message) -> bool:
    """Whether delivering ``new`` makes delivering the older queued ``old`` useless."""
    if new.type != old.type or new.term < old.term:
        return False
    if new.type == MSG_HEARTBEAT:
        return True
    if new.type == MSG_APPEND:
        return (
            new.term == old.term
            and new.index <= old.index
            and _last_index(old) <= _last_index(new)
            and new.commit >= old.commit
        )
    if new.type == MSG_SNAPSHOT:
        return (
            new.term == old.term
            and new.offset == old.offset
            and new.snapshot.index == old.snapshot.index
            and new.snapshot.term == old.snapshot.term
        )
    return False


class PeerQueue:
    """The messages waiting for one peer, oldest first, bounded, superseded ones replaced."""

    def __init__(
        self, max_bytes: int = MAX_QUEUED_BYTES, max_messages: int = MAX_QUEUED_MESSAGES
    ) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self._items: deque[tuple[Message, int]] = deque()
        self.bytes = 0
        # At least the highest previous index of a queued append (0: none queued): a streamed
        # append starts above it and so supersedes none, which skips the scan.
        self._append_index_bound = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, m: Message) -> bool:
        """Queue ``m`` (replacing what it supersedes); False if it was dropped for lack of room."""
        size = m.ByteSize()
        items = self._items
        kind = m.type
        if not items:
            self._append_index_bound = 0
        if kind == MSG_APPEND:
            scan = m.index <= self._append_index_bound
            self._append_index_bound = max(self._append_index_bound, m.index)
        else:
            scan = kind in (MSG_HEARTBEAT, MSG_SNAPSHOT)
        if scan and items:
            place = -1
            for i in range(len(items) - 1, -1, -1):
                old, old_size = items[i]
                if _supersedes(m, old):
                    self.bytes -= old_size
                    if place >= 0:
                        del items[place]  # keep the oldest position of those it replaces
                    place = i
                    items[i] = (m, size)
            if place >= 0:
                self.bytes += size
                return True
        if len(items) >= self.max_messages or (
            kind in _BULKY and items and self.bytes + size > self.max_bytes
        ):
            return False
        items.append((m, size))
        self.bytes += size
        return True

    def take(self, max_bytes: int) -> tuple[list[Message], int]:
        """Remove and return the oldest messages of at most ``max_bytes`` in all (at least one
        if any is queued), and their encoded size."""
        items = self._items
        batch: list[Message] = []
        total = 0
        while items and (not batch or total + items[0][1] <= max_bytes):
            m, size = items.popleft()
            batch.append(m)
            total += size
        self.bytes -= total
        return batch, total


class PeerSender:
    """Carries one peer's messages: a bounded queue drained by at most ``max_calls`` calls.

    ``on_failed(peer, error)`` is called for every failed call, ``on_delivered(peer, reply)``
    for every successful one, ``on_dropped(peer)`` when messages were dropped for lack of queue
    room.
    """

    def __init__(
        self,
        peer: int,
        channel: RpcChannel,
        *,
        max_calls: int,
        call_timeout: float,
        on_failed: Callable[[int, Exception], None],
        on_delivered: Callable[[int, DeliverReply], None],
        on_dropped: Callable[[int], None],
    ) -> None:
        self.peer = peer
        self.channel = channel
        self.max_calls = max_calls
        self.call_timeout = call_timeout
        self._on_failed = on_failed
        self._on_delivered = on_delivered
        self._on_dropped = on_dropped
        self.queue = PeerQueue()
        self.in_flight = 0
        self.in_flight_bytes = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def held_bytes(self) -> int:
        """Encoded bytes of the messages queued or in a call in flight."""
        return self.queue.bytes + self.in_flight_bytes

    def send(self, messages: list[Message]) -> None:
        """Queue ``messages`` and start calls while slots are free."""
        dropped = False
        for m in messages:
            if not self.queue.add(m):
                dropped = True
        if dropped:
            self._on_dropped(self.peer)
        self._pump()

    def _pump(self) -> None:
        while self.queue and self.in_flight < self.max_calls:
            batch, size = self.queue.take(MAX_CALL_BYTES)
            self.in_flight += 1
            self.in_flight_bytes += size
            # The calls in flight share one connection: this one's bytes cross after theirs.
            timeout = self.call_timeout + self.in_flight_bytes / MIN_LINK_BYTES_PER_S
            task = asyncio.get_running_loop().create_task(self._deliver(batch, size, timeout))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, batch: list[Message], size: int, timeout: float) -> None:
        try:
            reply = await RaftRpc.Deliver.call(
                self.channel, MessageBatch(messages=batch), timeout=timeout
            )
        except RpcError as exc:
            if isinstance(exc, RpcTimeoutError):
                self.channel.reset()  # free what a peer that does not read left buffered
            self._on_failed(self.peer, exc)
        else:
            self._on_delivered(self.peer, reply)
        finally:
            self.in_flight -= 1
            self.in_flight_bytes -= size
        self._pump()

    async def close(self) -> None:
        """Cancel the calls in flight and close the channel."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.channel.close()
