"""Errors the Raft core raises to its caller (the runner), never to peers."""

from __future__ import annotations

__all__ = ["NotLeaderError", "ProposalDroppedError", "RaftError"]


class RaftError(Exception):
    """Base class of every error the core raises."""


class NotLeaderError(RaftError):
    """The operation needs the leader and this node is not it.

    ``leader_hint`` is the leader this node last heard from in its current term, or 0 if it knows
    none; a client should retry there.
    """

    def __init__(self, leader_hint: int) -> None:
        super().__init__(f"not the leader (leader hint: {leader_hint or 'unknown'})")
        self.leader_hint = leader_hint


class ProposalDroppedError(RaftError):
    """The leader refused a proposal: a leadership transfer is under way. Retry shortly."""
