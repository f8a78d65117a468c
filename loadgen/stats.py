"""Per-operation counters a worker fills and the parent adds up: latencies and errors by kind.

A worker records every finished operation in an :class:`OpStats` (a histogram of the successful
ones' latencies in nanoseconds, errors counted by kind, and for cas how many were applied) and
ships :class:`StatsSet` deltas to the parent as JSON; the parent merges them. Merging is exact:
it gives what one recorder of every operation would have held.
"""

from __future__ import annotations

from loadgen.histogram import Histogram
from loadgen.workload import OPS

__all__ = ["TIMEOUT", "OpStats", "StatsSet"]

TIMEOUT = "timeout"
"""The error kind of an operation that got no answer in time (a write's outcome is unknown)."""


class OpStats:
    """One operation's latencies (successes only), errors by kind, and applied conditionals."""

    __slots__ = ("applied", "errors", "latency")

    def __init__(self) -> None:
        self.latency = Histogram()
        self.errors: dict[str, int] = {}
        self.applied = 0

    @property
    def ops(self) -> int:
        """How many operations succeeded."""
        return self.latency.count

    @property
    def error_count(self) -> int:
        """How many operations failed, all kinds together."""
        return sum(self.errors.values())

    def add_error(self, kind: str) -> None:
        """Count one failed operation of ``kind``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def merge(self, other: OpStats) -> None:
        """Add ``other``'s counts to these."""
        self.latency.merge(other.latency)
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        self.applied += other.applied

    def empty(self) -> bool:
        """True when nothing was recorded."""
        return self.latency.count == 0 and not self.errors

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form for :meth:`from_dict`."""
        return {"latency": self.latency.to_dict(), "errors": self.errors, "applied": self.applied}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> OpStats:
        """The counts :meth:`to_dict` described."""
        stats = cls()
        stats.latency = Histogram.from_dict(data["latency"])
        errors = data["errors"]
        if not isinstance(errors, dict):
            raise ValueError("errors must be an object")
        stats.errors = {str(kind): int(n) for kind, n in errors.items()}
        stats.applied = int(data["applied"])  # type: ignore[call-overload]
        return stats


class StatsSet:
    """An :class:`OpStats` per operation of :data:`loadgen.workload.OPS`, indexed like OPS."""

    __slots__ = ("by_op",)

    def __init__(self) -> None:
        self.by_op = [OpStats() for _ in OPS]

    def merge(self, other: StatsSet) -> None:
        """Add ``other``'s counts to these."""
        for mine, theirs in zip(self.by_op, other.by_op, strict=True):
            mine.merge(theirs)

    def total(self) -> OpStats:
        """Every operation's counts together."""
        result = OpStats()
        for stats in self.by_op:
            result.merge(stats)
        return result

    def empty(self) -> bool:
        """True when nothing was recorded."""
        return all(stats.empty() for stats in self.by_op)

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form (operations with nothing recorded left out) for :meth:`from_dict`."""
        return {
            name: stats.to_dict()
            for name, stats in zip(OPS, self.by_op, strict=True)
            if not stats.empty()
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> StatsSet:
        """The counts :meth:`to_dict` described; ValueError for an unknown operation."""
        result = cls()
        for name, stats in data.items():
            if name not in OPS or not isinstance(stats, dict):
                raise ValueError(f"bad stats entry for {name!r}")
            result.by_op[OPS.index(name)] = OpStats.from_dict(stats)
        return result
