"""The clerk's decisions without any I/O: request ids, the leader cache, and when to retry whom.

Theory of operation
-------------------
Both the asyncio :mod:`clerk` and the simulated clerks of the kvraft scenario suite drive this
module; it imports no I/O and no clock, and its randomness (backoff jitter) comes from an injected
``random.Random``, so a simulation replays exactly.

Request ids. A write takes a fresh id from :meth:`ClerkCore.new_request_id` once and keeps it for
every retry of that write, so a write that reached the log twice is answered from the servers'
session cache instead of being applied twice. When the write has its final answer (whatever the
outcome), or the clerk gives up on it, the caller calls :meth:`ClerkCore.finish`;
:meth:`ClerkCore.acked_below` is then the lowest id still outstanding, which the clerk sends so
the servers may forget older cached replies. Finishing an abandoned write is safe, and bounds the
doubt about it: a late copy that reaches the log after a later write moved the servers' mark past
it is refused (ErrStaleRequest), never applied. Reads take no id: they never enter the log.

Sessions. The ids belong to a :class:`ClerkSession` (a ClientId and its numbering). When the
servers answer ``ErrSessionExpired`` (they forgot the session), the caller starts a new one with
:meth:`ClerkCore.renew_session`: a new ClientId whose ids start again at 1. Writes still under way
in the expired session keep their own session object, so their ids and marks never mix with the
new one's. Whether the refused write may be sent again is the caller's decision: only if no copy
of it but the refused one was ever sent (see ``docs/sessions.md``).

Servers. The core names servers by stable ids (the asyncio clerk uses node indexes: ``node<i>``
is ``i``, Raft id ``i + 1``) and asks those in :attr:`ClerkCore.servers`, ids ``0..n-1`` to
begin with. When the clerk learns the membership it calls :meth:`ClerkCore.set_servers`: the ids
may then grow and have gaps; the cached leader follows the leader the membership names.

Retries. An operation starts an :class:`Attempt` at the cached leader. Each failed ask moves to the
next server: the leader hint from a wrong-leader reply when it names another of the servers, else
the next id in ascending order (wrapping). The first ``n_servers`` asks of a round go out at once
(delay 0); after that many failures the round ends with a capped exponential backoff drawn with
jitter, and a new round begins. Counting asks rather than distinct servers keeps two servers that
hint at each other (a stale hint during an election) from spinning without a pause.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Attempt", "ClerkCore", "ClerkSession", "RetryPolicy", "hint_from_raft_id"]


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between rounds of asks: capped exponential backoff with jitter.

    The k-th backoff of an operation (k = 0, 1, ...) is ``b = min(max_backoff_ms,
    initial_backoff_ms * multiplier**k)`` drawn uniformly in ``[b * (1 - jitter), b]``.
    """

    initial_backoff_ms: int = 5
    max_backoff_ms: int = 500
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial_backoff_ms <= 0:
            raise ValueError(f"initial_backoff_ms must be positive, not {self.initial_backoff_ms}")
        if self.max_backoff_ms < self.initial_backoff_ms:
            raise ValueError(
                f"max_backoff_ms ({self.max_backoff_ms}) must be >= initial_backoff_ms "
                f"({self.initial_backoff_ms})"
            )
        if self.multiplier < 1.0:
            raise ValueError(f"multiplier must be >= 1, not {self.multiplier}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], not {self.jitter}")

    def backoff_ms(self, round_index: int, rng: random.Random) -> int:
        """The pause after the ``round_index``-th failed round (0-based), in whole ms (>= 1)."""
        # Cap the exponent so a long outage cannot overflow the float.
        ceiling = float(self.max_backoff_ms)
        b = min(ceiling, self.initial_backoff_ms * self.multiplier ** min(round_index, 64))
        drawn = rng.uniform(b * (1.0 - self.jitter), b)
        return max(1, round(drawn))


def hint_from_raft_id(raft_id: int) -> int | None:
    """The server id (node index) a reply's leader hint names: Raft id - 1; 0 means unknown."""
    return raft_id - 1 if raft_id >= 1 else None


class ClerkSession:
    """One session's ClientId and request numbering."""

    def __init__(self, client_id: bytes) -> None:
        if not client_id:
            raise ValueError("client_id must not be empty")
        self.client_id = client_id
        self._next_id = 1
        self._outstanding: set[int] = set()

    def new_request_id(self) -> int:
        """A fresh id for one write (1, 2, 3, ...); it stays outstanding until :meth:`finish`."""
        request_id = self._next_id
        self._next_id += 1
        self._outstanding.add(request_id)
        return request_id

    def acked_below(self) -> int:
        """The lowest request id still outstanding, or the next id to be issued if none is."""
        return min(self._outstanding, default=self._next_id)

    def finish(self, request_id: int) -> None:
        """Record that the write ``request_id`` got its final answer or was abandoned; finishing
        twice is a no-op.

        Raises ValueError for an id this session never issued.
        """
        if not 1 <= request_id < self._next_id:
            raise ValueError(
                f"request id {request_id} was never issued (ids so far: 1..{self._next_id - 1})"
            )
        self._outstanding.discard(request_id)


class ClerkCore:
    """One client's session, leader cache and retry policy."""

    def __init__(
        self,
        n_servers: int,
        client_id: bytes,
        rng: random.Random,
        policy: RetryPolicy = RetryPolicy(),  # frozen, so one shared default is safe
    ) -> None:
        """Servers ``0..n_servers-1`` to begin with; ``client_id`` must be unique per clerk (the
        asyncio clerk uses ``uuid4().bytes``)."""
        if n_servers < 1:
            raise ValueError(f"a clerk needs at least one server, not {n_servers}")
        self.servers: tuple[int, ...] = tuple(range(n_servers))
        """The ids of the servers to ask, ascending."""
        self.session = ClerkSession(client_id)
        """The current session: new writes take their ids from it."""
        self.rng = rng
        self.policy = policy
        self.leader = 0
        """The server believed to lead; always one of :attr:`servers`."""

    @property
    def n_servers(self) -> int:
        """How many servers there are to ask (a round's length)."""
        return len(self.servers)

    def set_servers(self, servers: Iterable[int], leader: int | None = None) -> None:
        """The servers to ask are now ``servers`` (ids >= 0); ``leader`` is the one the
        membership names as leader, if any. The cached leader becomes ``leader`` when it is
        one of them, else stays when it still is one, else is the lowest id."""
        ids = tuple(sorted(set(servers)))
        if not ids or ids[0] < 0:
            raise ValueError(f"servers must be ids >= 0, at least one, not {ids}")
        self.servers = ids
        if leader in ids:
            self.leader = leader
        elif self.leader not in ids:
            self.leader = ids[0]

    def next_after(self, server: int) -> int:
        """The server after ``server`` in ascending order, wrapping; ``server`` need not be one
        of them (it may have left)."""
        return self.servers[bisect.bisect_right(self.servers, server) % len(self.servers)]

    @property
    def client_id(self) -> bytes:
        """The current session's ClientId."""
        return self.session.client_id

    def new_request_id(self) -> int:
        """A fresh id in the current session (see :meth:`ClerkSession.new_request_id`)."""
        return self.session.new_request_id()

    def acked_below(self) -> int:
        """The current session's mark (see :meth:`ClerkSession.acked_below`)."""
        return self.session.acked_below()

    def finish(self, request_id: int) -> None:
        """Finish a write of the current session (see :meth:`ClerkSession.finish`)."""
        self.session.finish(request_id)

    def renew_session(self, expired: ClerkSession, client_id: bytes) -> ClerkSession:
        """The servers refused a write of ``expired`` with ErrSessionExpired: unless a later
        session already replaced it, start a new one named ``client_id``. Returns the current
        session."""
        if self.session is expired:
            if client_id == expired.client_id:
                raise ValueError("a new session needs a new client_id")
            self.session = ClerkSession(client_id)
        return self.session

    def start(self) -> Attempt:
        """Begin one operation's walk over the servers, first asking the cached leader."""
        return Attempt(self)


class Attempt:
    """One operation's sequence of asks: whom to ask now and how long to wait before the next."""

    def __init__(self, core: ClerkCore) -> None:
        self._core = core
        self.server = core.leader
        self.asks = 1  # asks made so far, the current one included
        self.rounds_failed = 0
        self._asks_in_round = 1

    def on_success(self) -> None:
        """The current server answered as leader: cache it for the next operations (unless it
        left the servers meanwhile)."""
        if self.server in self._core.servers:
            self._core.leader = self.server

    def on_wrong_leader(self, hint: int | None) -> int:
        """The server is not the leader; ``hint`` is the id it named, if any.

        Moves :attr:`server` to the hinted server when the hint is another of the servers, else
        to the next id, and returns the delay in ms to wait before asking it.
        """
        if hint is not None and hint in self._core.servers and hint != self.server:
            return self._move_to(hint)
        return self._move_to(self._core.next_after(self.server))

    def on_failure(self) -> int:
        """The ask timed out or the connection failed: move to the next server; the delay in ms."""
        return self._move_to(self._core.next_after(self.server))

    def restart(self) -> None:
        """The servers changed under this attempt: ask the cached leader next. Counts no ask,
        so the round and its backoff go on as they were."""
        self.server = self._core.leader

    def _move_to(self, server: int) -> int:
        delay = 0
        if self._asks_in_round >= self._core.n_servers:
            delay = self._core.policy.backoff_ms(self.rounds_failed, self._core.rng)
            self.rounds_failed += 1
            self._asks_in_round = 0
        self.server = server
        self.asks += 1
        self._asks_in_round += 1
        return delay
