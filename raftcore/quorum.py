"""Majority arithmetic over a voter set passed in by the caller (never a module constant).

The configuration is a value the core holds, so a later membership change (joint consensus)
can swap these functions' inputs without touching the protocol code that calls them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping

__all__ = ["VoteResult", "committed_index", "has_quorum", "majority", "vote_result"]


class VoteResult(enum.Enum):
    """Outcome of a (pre-)vote tally so far."""

    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def majority(voters: Collection[int]) -> int:
    """The number of voters that makes a quorum: more than half."""
    return len(voters) // 2 + 1


def committed_index(voters: Collection[int], match_of: Callable[[int], int]) -> int:
    """The largest index that a quorum of ``voters`` has matched (``match_of(voter)``)."""
    matched = sorted(map(match_of, voters), reverse=True)  # map: no generator frame per voter
    return matched[majority(voters) - 1]


def has_quorum(voters: Collection[int], members: Callable[[int], bool]) -> bool:
    """Whether the voters for which ``members`` holds form a quorum."""
    return sum(1 for v in voters if members(v)) >= majority(voters)


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Tally ``votes`` (voter -> granted) cast so far among ``voters``."""
    granted = rejected = 0
    for v in voters:
        vote = votes.get(v)
        if vote is True:
            granted += 1
        elif vote is False:
            rejected += 1
    need = majority(voters)
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING
