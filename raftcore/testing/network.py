"""A simulated network that lies the way labrpc (MIT 6.5840) does, in virtual time.

Theory of operation
-------------------
Endpoints are integer addresses. :meth:`SimNetwork.attach` gives an address a :class:`Port`; only
bytes cross the network, so nodes share no objects. Each attach bumps the address's
*incarnation*: a crashed node's port goes dead (it can no longer send, its pending calls never
complete) and anything in flight to or from the old incarnation is dropped on arrival.

Two paths share one fault model:

* :meth:`Port.send` is a one-way datagram, tagged as a request or a reply. Raft's messages are all
  one-way (a response is a fresh message), so a sender never waits on an unreachable peer.
* :meth:`Port.call` is a request/reply exchange like labrpc's ``Call``: it always ends, exactly
  once, with the reply bytes or ``None`` (failure or timeout). The next layer's clerks and KV
  servers use it; the Raft cluster does not.

Faults (labrpc's numbers, see ``../shared/reference/raft-scenarios.md``):

* reliable: every message arrives after a short base delay (a fraction of a millisecond);
* unreliable: requests wait 0-26 ms; 10 % of requests are dropped before their handler runs; 10 % of
  replies are dropped after the handler ran;
* long reordering: about two thirds of replies are held 200 ms + rand(rand(2000)) ms;
* unreachable: a message to a disconnected, partitioned or crashed endpoint is dropped; a call to
  one fails after 0-7000 ms (``long_delays``) or 0-100 ms;
* duplication (beyond labrpc, off by default): a fraction of one-way messages arrives twice;
* partitions: :meth:`disconnect` cuts a node off in both directions (labrpc's enable/disable);
  :meth:`cut` / :meth:`partition` cut individual links, which also expresses bridges;
  :meth:`cut_one_way` cuts one direction of a link only;
* slow links (beyond labrpc): :meth:`slow_down` adds a fixed delay to one direction of a link.

Reachability is checked when a message is sent and again when it arrives. Counters follow labrpc:
totals count every request sent (and its bytes); per-address counts are requests delivered.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from raftcore.testing.scheduler import MS, Scheduler, Timer

__all__ = [
    "BASE_DELAY_US",
    "CallHandler",
    "NetworkStats",
    "Port",
    "SimNetwork",
]

BASE_DELAY_US = (50, 500)
"""Delay range of every message, reliable or not (labrpc's goroutine hand-offs)."""

_UNRELIABLE_REQUEST_DELAY_MAX_MS = 26
_UNRELIABLE_DROP = 0.1
_REORDER_FRACTION = 2 / 3
_REORDER_BASE_MS = 200
_REORDER_SPREAD_MS = 2000
_UNREACHABLE_LONG_MS = 7000
_UNREACHABLE_SHORT_MS = 100

CallHandler = Callable[[int, bytes, Callable[[bytes], None]], None]
"""A service: ``handler(caller, request, respond)``; call ``respond(reply)`` at most once, now or
later (a handler that never responds makes the caller time out)."""


@dataclass
class NetworkStats:
    """Traffic counters for one network (one test)."""

    requests_sent: int = 0
    request_bytes: int = 0
    replies_sent: int = 0
    reply_bytes: int = 0
    requests_received: dict[int, int] = field(default_factory=dict)

    @property
    def bytes_total(self) -> int:
        """All bytes sent, requests and replies."""
        return self.request_bytes + self.reply_bytes


class _Endpoint:
    __slots__ = ("incarnation", "on_call", "on_message")

    def __init__(
        self,
        incarnation: int,
        on_message: Callable[[int, bytes], None] | None,
        on_call: CallHandler | None,
    ) -> None:
        self.incarnation = incarnation
        self.on_message = on_message
        self.on_call = on_call


class Port:
    """One incarnation's handle on the network; dead once its address is detached or re-attached."""

    __slots__ = ("address", "incarnation", "network")

    def __init__(self, network: SimNetwork, address: int, incarnation: int) -> None:
        self.network = network
        self.address = address
        self.incarnation = incarnation

    @property
    def alive(self) -> bool:
        """Whether this port's incarnation is still the attached one."""
        return self.network._incarnation_of(self.address) == self.incarnation

    def send(self, dst: int, payload: bytes, *, is_request: bool) -> bool:
        """Send a one-way message; it may be delayed, reordered or dropped, never blocks.

        Returns False when ``dst`` is unreachable right now (cut off, crashed, or this port is
        dead): what a real transport learns from a refused connection. Random loss is silent.
        """
        return self.network._send(self, dst, payload, is_request)

    def call(
        self, dst: int, request: bytes, on_done: Callable[[bytes | None], None], timeout: int
    ) -> None:
        """Call ``dst``'s service; ``on_done`` runs exactly once, with the reply or ``None``.

        ``None`` means the call failed (dropped, unreachable, crashed) or ``timeout`` virtual
        microseconds passed; the request may or may not have been handled. If this port dies
        first, ``on_done`` never runs (its caller crashed).
        """
        self.network._call(self, dst, request, on_done, timeout)


class SimNetwork:
    """Connects ports; carries bytes with the faults switched on by the flags below."""

    def __init__(self, scheduler: Scheduler, rng: random.Random) -> None:
        self.scheduler = scheduler
        self.rng = rng
        self.reliable = True
        """False: labrpc's unreliable mode (request delays, request and reply loss)."""
        self.long_reordering = False
        """True: about two thirds of replies are held 200 ms + rand(rand(2000)) ms."""
        self.long_delays = True
        """Calls to unreachable endpoints fail after up to 7 s (Raft tests) rather than 100 ms."""
        self.duplicate_fraction = 0.0
        """Beyond labrpc: this fraction of one-way messages is delivered twice, independently
        delayed (a retransmitting transport); Raft must treat the copy as a stale message."""
        self.stats = NetworkStats()
        self._endpoints: dict[int, _Endpoint] = {}
        self._incarnations: dict[int, int] = {}
        self._connected: dict[int, bool] = {}
        self._cut: set[tuple[int, int]] = set()
        self._one_way: set[tuple[int, int]] = set()  # (src, dst) pairs cut in that direction
        self._slow: dict[tuple[int, int], int] = {}  # (src, dst) -> extra delay in us

    # -- endpoints ------------------------------------------------------------------------------

    def attach(
        self,
        address: int,
        *,
        on_message: Callable[[int, bytes], None] | None = None,
        on_call: CallHandler | None = None,
    ) -> Port:
        """Attach a new incarnation at ``address``; the previous one (if any) goes dead.

        ``on_message(src, payload)`` receives one-way messages, ``on_call`` serves calls. The
        connection state is left as it was: a restarted node stays cut off until :meth:`connect`.
        """
        incarnation = self._incarnations.get(address, 0) + 1
        self._incarnations[address] = incarnation
        self._endpoints[address] = _Endpoint(incarnation, on_message, on_call)
        self._connected.setdefault(address, False)
        return Port(self, address, incarnation)

    def detach(self, address: int) -> None:
        """Crash the endpoint: its port dies and everything in flight to or from it is lost."""
        self._incarnations[address] = self._incarnations.get(address, 0) + 1
        self._endpoints.pop(address, None)

    def _incarnation_of(self, address: int) -> int:
        return self._incarnations.get(address, 0)

    # -- connectivity ---------------------------------------------------------------------------

    def connect(self, address: int) -> None:
        """Let ``address`` talk to every connected endpoint its links are not cut from."""
        self._connected[address] = True

    def disconnect(self, address: int) -> None:
        """Cut ``address`` off in both directions (messages in flight are dropped on arrival)."""
        self._connected[address] = False

    def is_connected(self, address: int) -> bool:
        """Whether ``address`` is connected (it may still be crashed or have cut links)."""
        return self._connected.get(address, False)

    def cut(self, a: int, b: int) -> None:
        """Cut the link between ``a`` and ``b`` in both directions."""
        self._cut.add((min(a, b), max(a, b)))

    def mend(self, a: int, b: int) -> None:
        """Restore the link between ``a`` and ``b`` (both directions, one-way cuts too)."""
        self._cut.discard((min(a, b), max(a, b)))
        self._one_way.discard((a, b))
        self._one_way.discard((b, a))

    def cut_one_way(self, src: int, dst: int) -> None:
        """Drop what ``src`` sends to ``dst``; ``dst`` still reaches ``src``."""
        self._one_way.add((src, dst))

    def slow_down(self, src: int, dst: int, extra: int) -> None:
        """Delay every message from ``src`` to ``dst`` by ``extra`` more microseconds (0: none)."""
        if extra:
            self._slow[(src, dst)] = extra
        else:
            self._slow.pop((src, dst), None)

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Replace all cut links: endpoints in different groups cannot talk, within one group can.

        Endpoints named in no group keep all their links (a *bridge* is a node left out).
        """
        self._cut.clear()
        self._one_way.clear()
        for gi, group in enumerate(groups):
            for other in groups[gi + 1 :]:
                for a in group:
                    for b in other:
                        self.cut(a, b)

    def heal(self) -> None:
        """Mend every cut link (node-level disconnects and slow links stay as they are)."""
        self._cut.clear()
        self._one_way.clear()

    def reachable(self, a: int, b: int) -> bool:
        """Whether a message from ``a`` to ``b`` would be carried right now."""
        if not (self._connected.get(a, False) and self._connected.get(b, False)):
            return False
        return a == b or ((min(a, b), max(a, b)) not in self._cut and (a, b) not in self._one_way)

    # -- carrying messages ----------------------------------------------------------------------

    def _delay(self, is_request: bool) -> int:
        rng = self.rng
        delay = rng.randrange(BASE_DELAY_US[0], BASE_DELAY_US[1])
        if is_request and not self.reliable:
            delay += rng.randrange(_UNRELIABLE_REQUEST_DELAY_MAX_MS + 1) * MS
        if not is_request and self.long_reordering and rng.random() < _REORDER_FRACTION:
            spread = rng.randrange(1 + rng.randrange(_REORDER_SPREAD_MS))
            delay += (_REORDER_BASE_MS + spread) * MS
        return delay

    def _dropped(self) -> bool:
        return not self.reliable and self.rng.random() < _UNRELIABLE_DROP

    def _count(self, payload: bytes, is_request: bool) -> None:
        if is_request:
            self.stats.requests_sent += 1
            self.stats.request_bytes += len(payload)
        else:
            self.stats.replies_sent += 1
            self.stats.reply_bytes += len(payload)

    def _count_received(self, dst: int) -> None:
        received = self.stats.requests_received
        received[dst] = received.get(dst, 0) + 1

    def _send(self, port: Port, dst: int, payload: bytes, is_request: bool) -> bool:
        if not port.alive:
            return False
        self._count(payload, is_request)
        src = port.address
        endpoint = self._endpoints.get(dst)
        if endpoint is None or not self.reachable(src, dst):
            return False
        if self._dropped():
            return True
        dst_incarnation = endpoint.incarnation
        delay = self._delay(is_request) + self._slow.get((src, dst), 0)

        def deliver() -> None:
            target = self._endpoints.get(dst)
            if (
                target is None
                or target.incarnation != dst_incarnation
                or not port.alive
                or not self.reachable(src, dst)
                or target.on_message is None
            ):
                return
            if is_request:
                self._count_received(dst)
            target.on_message(src, payload)

        self.scheduler.call_later(delay, deliver)
        if self.duplicate_fraction and self.rng.random() < self.duplicate_fraction:
            self.scheduler.call_later(self._delay(is_request), deliver)
        return True

    def _unreachable_delay(self) -> int:
        limit = _UNREACHABLE_LONG_MS if self.long_delays else _UNREACHABLE_SHORT_MS
        return self.rng.randrange(limit + 1) * MS

    def _call(
        self,
        port: Port,
        dst: int,
        request: bytes,
        on_done: Callable[[bytes | None], None],
        timeout: int,
    ) -> None:
        if not port.alive:
            return
        src = port.address
        scheduler = self.scheduler
        finished = False
        timer: Timer | None = None

        def finish(reply: bytes | None) -> None:
            nonlocal finished
            if finished or not port.alive:
                return
            finished = True
            if timer is not None:
                timer.cancel()
            on_done(reply)

        def fail_later(delay: int) -> None:
            scheduler.call_later(delay, lambda: finish(None))

        timer = scheduler.call_later(timeout, lambda: finish(None))
        self._count(request, True)
        endpoint = self._endpoints.get(dst)
        if endpoint is None or endpoint.on_call is None or not self.reachable(src, dst):
            fail_later(self._unreachable_delay())
            return
        request_delay = self._delay(True)
        if self._dropped():
            fail_later(request_delay)
            return
        dst_incarnation = endpoint.incarnation

        def handle() -> None:
            target = self._endpoints.get(dst)
            if (
                target is None
                or target.incarnation != dst_incarnation
                or target.on_call is None
                or not self.reachable(src, dst)
            ):
                fail_later(self._unreachable_delay())
                return
            self._count_received(dst)
            responded = False

            def respond(reply: bytes) -> None:
                nonlocal responded
                if responded:
                    raise RuntimeError("respond() called twice for one call")
                responded = True
                self._count(reply, False)
                alive = self._incarnation_of(dst) == dst_incarnation
                # The handler ran; its reply is lost if the server died or is cut off meanwhile,
                # or with the unreliable network's reply-loss probability.
                lost = not alive or not self.reachable(src, dst) or self._dropped()
                delay = self._delay(False)
                scheduler.call_later(delay, lambda: finish(None if lost else reply))

            target.on_call(src, request, respond)

        scheduler.call_later(request_delay, handle)
