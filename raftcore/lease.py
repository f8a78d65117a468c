"""The leader lease and the vote refusal that backs it (thesis 6.4.1), on a monotonic clock.

Theory of operation
-------------------
A follower that hears from its leader at time ``h`` (its own clock) refuses to vote for anyone
else, and does not campaign itself, until ``h + E`` where E is the minimum election timeout
(``Config.election_tick``). So once a majority has heard a round the leader *sent* at ``s``, no
other leader can be elected before ``s + E`` in real time, give or take the clocks' drift: every
receipt happens after the send. A voter that restarts with a non-zero term may have answered a
round just before it went down, so it refuses for E from its restart. The leader therefore
trusts the round a majority acknowledged most recently for ``E * (1 - lease_drift_margin)`` on
its own clock from that round's send time (not from when the answers arrived, which may be much
later), and serves reads without a round trip until then. The margin covers clocks that run at
different rates: if any two nodes' clocks differ in rate by at most that fraction, the lease
ends before the refusal does.

Rounds are identified by their send time: the leader stamps every append, heartbeat and snapshot
chunk with its clock (``Message.lease_sent``) and the follower echoes the stamp in its answer, so a
late answer only vouches for the round it answers. Stamps are taken when the core builds the
message, which is never later than the runner sends it, and a follower takes its reading when it
steps the message, never earlier than the leader sent it: both errors shorten the lease.

Time is whatever the runner's clock says (see ``RawNode``): a stalled runner loses ticks but not
clock time, so after a stall the leader finds its lease expired and the followers' refusal
periods, if anything, last longer. A lease ends at once when a leadership transfer starts (the
target campaigns with votes that skip the refusal) and stays off for the rest of the term, since
a delayed MSG_TIMEOUT_NOW can still start that campaign after the transfer was abandoned; it also
ends with the term. Reads then fall back to a heartbeat round per batch, which needs no clock.
"""

from __future__ import annotations

import math

from raftcore.raftpb_pb2 import Message

__all__ = ["LeaderLease", "echo_round", "lease_duration"]


def lease_duration(election_tick: int, drift_margin: float) -> float:
    """How long, in ticks of the leader's clock, one acknowledged round holds the lease."""
    return election_tick * (1.0 - drift_margin)


def echo_round(request: Message, out: list[Message], first: int) -> None:
    """Stamp the answers to the leader's ``request`` (``out[first:]``) with its round."""
    if request.HasField("lease_sent"):
        sent = request.lease_sent
        for answer in out[first:]:
            answer.lease_sent = sent


class LeaderLease:
    """One leader's lease over one term: the newest round each peer acknowledged."""

    __slots__ = ("_acked", "_duration", "_ended", "_needed")

    def __init__(self, peers: tuple[int, ...], duration: float) -> None:
        """``peers``: the other voters; the leader itself always counts towards the quorum."""
        self._acked = dict.fromkeys(peers, -math.inf)
        self._duration = duration
        self._ended = False
        self._needed = (len(peers) + 1) // 2  # a majority of the voters, the leader aside

    def acknowledged(self, peer: int, sent: float) -> None:
        """``peer`` answered the round this leader sent at ``sent``."""
        if sent > self._acked.get(peer, math.inf):
            self._acked[peer] = sent

    def end(self) -> None:
        """Give the lease up for the rest of this term (a leadership transfer started)."""
        self._ended = True

    def expiry(self) -> float:
        """When the lease ends on the leader's clock (``-inf`` if it never started or ended)."""
        if self._ended:
            return -math.inf
        if self._needed == 0:
            return math.inf  # a single voter is its own quorum
        newest_first = sorted(self._acked.values(), reverse=True)
        return newest_first[self._needed - 1] + self._duration

    def valid(self, now: float) -> bool:
        """Whether a read may be served at ``now`` without confirming leadership."""
        return now < self.expiry()
