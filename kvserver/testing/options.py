"""How a simulated KV cluster is built: :class:`KVClusterOptions`, shared by the cluster and its
nodes (so neither imports the other for it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from clerk.core import RetryPolicy
from kvserver.sessions import DEFAULT_MAX_CLOCK_STEP_MS, DEFAULT_MAX_IDLE_MS
from kvserver.testing.clerk import ClerkOptions
from raftcore import ReadOnlyOption
from raftcore.testing.runtime import ClusterOptions

__all__ = ["KVClusterOptions"]


@dataclass(frozen=True)
class KVClusterOptions:
    """How a simulated KV cluster is built.

    ``raft`` carries the core's timing (10 ms ticks, 10 heartbeats a second, elections after
    300-590 ms); its ``snapshot_every`` must stay None: the Replica snapshots by
    ``max_raft_state`` (6.5840's maxraftstate; None never snapshots).
    """

    raft: ClusterOptions = field(default_factory=ClusterOptions)
    max_raft_state: int | None = None
    session_max_idle_ms: int = DEFAULT_MAX_IDLE_MS
    """Idle age after which the state machine forgets a client session (1: at once, so current
    clerks' retries are refused ErrSessionExpired and legacy clerks' applied again)."""
    session_clock_step_ms: int = DEFAULT_MAX_CLOCK_STEP_MS
    """The most one command moves the session clock (a huge value: the old unbounded advance)."""
    read_only: ReadOnlyOption = ReadOnlyOption.SAFE
    """How leaders confirm reads: a heartbeat round per batch, or the check-quorum lease."""
    stale_reads: bool = False
    """Test-only bug: a node that believes it leads serves Gets locally, without ReadIndex."""
    clerk: ClerkOptions = field(default_factory=ClerkOptions)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fsync_us: tuple[int, int] = (50, 5000)
    """Range of a node's typical fdatasync, in virtual microseconds: each node's typical time is
    drawn from it per seed (log-uniformly, so some runs pair a slow disk with fast ones), and
    each sync takes 0.5 to 1.5 times that."""

    def __post_init__(self) -> None:
        if self.raft.snapshot_every is not None:
            raise ValueError("KV nodes snapshot by max_raft_state; leave raft.snapshot_every None")
        if self.max_raft_state is not None and self.max_raft_state <= 0:
            raise ValueError(f"max_raft_state must be positive or None, not {self.max_raft_state}")
        low, high = self.fsync_us
        if not 0 < low <= high:
            raise ValueError(f"fsync_us must be a range of positive times, not {self.fsync_us}")
