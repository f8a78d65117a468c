"""Exactly-once client sessions, applied in log order (Raft thesis section 6.3).

Theory of operation
-------------------
A client (ClientId) numbers its requests (RequestId) and retries a request with the SAME id until it
gets an answer. The state machine remembers, per client, the result of every request whose reply the
client may still be waiting for, so a retry that reaches the log twice is answered from that cache
instead of being executed again.

A client tells the servers how far it has got with ``acked_below``: every request below it has
been answered, so those cached results can be dropped. The original C++ clerk does not send it (0):
it has one request outstanding at a time, so its ``request_id`` itself is the mark. A request below
the mark is a stale duplicate whose answer was already delivered: it is refused with
``ErrStaleRequest`` and changes nothing. Reads never enter the log, so they never move the mark
(the original's reads did, which let a retried write apply twice).

Since a request below the mark is refused before the cache is consulted, dropping its cached
result can wait: a client's cache is pruned only once it has doubled since its last prune. A
client with W requests in flight then costs O(1) amortized work per command, not a rebuild of
its W cached results per command. Snapshots hold only the results at or above the mark, so
when a replica last pruned never shows in its state.

Idle sessions expire so the table stays bounded, on a session clock that every node moves the same
way at the same log index. Each command carries its proposing leader's wall clock (``now_ms``), and
the session clock advances by the step from the previous command's stamp, clamped to
``[0, max_clock_step_ms]`` (1 s by default). So a leader whose wall clock is an hour ahead (an NTP
step, a resumed VM, skew between nodes) or behind moves the session clock by at most one bound,
once, at the jump or the leader change, and never backwards; only a run of closely stamped entries
moves it far. Expiry thus needs ``max_idle_ms`` (one hour) of steady time as the leaders measure
it, and an idle cluster's clock stands still (a long gap counts as one bound).

A command from a session the table does not hold whose ``acked_below`` is above 1 says its client
has had requests answered before: its session existed and expired. Executing it could run a write
twice (its reply may have been lost before the expiry), so it is refused with
``ErrSessionExpired``, changes nothing and is not remembered. The clerk then starts a new session.
A client that does not say (``acked_below`` 0: the original C++ clerk, whose Gets take request ids
too, so a first write may have any id) starts a new session as before: its retries are
protected by the clock bound alone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import CachedReply, Command, Result, Session, SessionTable

__all__ = [
    "DEFAULT_MAX_CLOCK_STEP_MS",
    "DEFAULT_MAX_IDLE_MS",
    "Sessions",
]

DEFAULT_MAX_IDLE_MS = 3_600_000
#: The most the session clock moves for one command, whatever the stamps say.
DEFAULT_MAX_CLOCK_STEP_MS = 1_000
#: A client's reply cache is never pruned below this many entries.
_PRUNE_MIN = 8


@dataclass
class _ClientState:
    last_active_ms: int
    acked_below: int = 0
    replies: dict[int, Result] = field(default_factory=dict)
    # Prune the entries below acked_below once replies holds this many.
    prune_at: int = _PRUNE_MIN


class Sessions:
    """The per-client dedup table: look a command up before executing it; record its result."""

    def __init__(
        self,
        max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
        max_clock_step_ms: int = DEFAULT_MAX_CLOCK_STEP_MS,
    ) -> None:
        if max_idle_ms <= 0:
            raise ValueError(f"max_idle_ms must be positive, not {max_idle_ms}")
        if max_clock_step_ms <= 0:
            raise ValueError(f"max_clock_step_ms must be positive, not {max_clock_step_ms}")
        self.max_idle_ms = max_idle_ms
        self.max_clock_step_ms = max_clock_step_ms
        self.clock_ms = 0
        self.last_stamp_ms = 0
        # Ordered by last activity, oldest first: expiry pops from the front.
        self._clients: OrderedDict[bytes, _ClientState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def advance_clock(self, now_ms: int) -> None:
        """Take the next command's stamp: move the clock by its step from the previous stamp,
        clamped to ``[0, max_clock_step_ms]``, and expire idle sessions."""
        step = now_ms - self.last_stamp_ms
        self.last_stamp_ms = now_ms
        if step > 0:
            self.clock_ms += min(step, self.max_clock_step_ms)
        horizon = self.clock_ms - self.max_idle_ms
        while self._clients:
            client_id, state = next(iter(self._clients.items()))
            if state.last_active_ms >= horizon:
                break
            del self._clients[client_id]

    def lookup(self, command: Command) -> Result | None:
        """The answer to give instead of executing ``command``, or None if it is new."""
        state = self._clients.get(command.client_id)
        if state is None:
            # AckedBelow > 1: requests of this client were answered, so its session expired.
            return Result(err=Err.SESSION_EXPIRED) if command.acked_below > 1 else None
        if command.request_id < state.acked_below:
            return Result(err=Err.STALE_REQUEST)
        return state.replies.get(command.request_id)

    def record(self, command: Command, result: Result) -> None:
        """Remember ``result`` as the answer to ``command`` and forget what the client has seen."""
        state = self._clients.get(command.client_id)
        if state is None:
            state = _ClientState(last_active_ms=self.clock_ms)
            self._clients[command.client_id] = state
        else:
            state.last_active_ms = self.clock_ms
            self._clients.move_to_end(command.client_id)
        mark = command.acked_below or command.request_id
        if mark > state.acked_below:
            state.acked_below = mark
        replies = state.replies
        replies[command.request_id] = result
        if len(replies) >= state.prune_at:
            state.replies = replies = _live(replies, state.acked_below)
            state.prune_at = max(_PRUNE_MIN, 2 * len(replies))

    def to_proto(self) -> SessionTable:
        """The whole table, for a snapshot."""
        table = SessionTable(clock_ms=self.clock_ms, last_stamp_ms=self.last_stamp_ms)
        for client_id, state in self._clients.items():
            table.sessions.append(
                Session(
                    client_id=client_id,
                    last_active_ms=state.last_active_ms,
                    acked_below=state.acked_below,
                    replies=[
                        CachedReply(request_id=rid, result=r)
                        for rid, r in sorted(_live(state.replies, state.acked_below).items())
                    ],
                )
            )
        return table

    @classmethod
    def from_proto(
        cls,
        table: SessionTable,
        max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
        max_clock_step_ms: int = DEFAULT_MAX_CLOCK_STEP_MS,
    ) -> Sessions:
        """Rebuild a table saved by :meth:`to_proto` (sessions keep their activity order)."""
        sessions = cls(max_idle_ms, max_clock_step_ms)
        sessions.clock_ms = table.clock_ms
        sessions.last_stamp_ms = table.last_stamp_ms
        for s in table.sessions:
            sessions._clients[s.client_id] = _ClientState(
                last_active_ms=s.last_active_ms,
                acked_below=s.acked_below,
                replies={r.request_id: r.result for r in s.replies},
            )
        return sessions


def _live(replies: dict[int, Result], acked_below: int) -> dict[int, Result]:
    """The cached replies a client may still ask for again: those at or above its mark."""
    return {rid: r for rid, r in replies.items() if rid >= acked_below}
