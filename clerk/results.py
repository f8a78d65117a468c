"""What the clerk's operations return, beyond plain values."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConditionalResult", "StaleRead", "StaleScan"]


@dataclass(frozen=True)
class ConditionalResult:
    """The outcome of delete, put_if_absent, update or cas.

    ``applied`` says whether the operation changed the store. ``previous`` is the key's value
    just before the operation (None: the key was absent): for a refused operation it is the value
    that made it refuse (the existing value for put_if_absent, the current value for cas).
    """

    applied: bool
    previous: bytes | None


@dataclass(frozen=True)
class StaleRead:
    """A value read from one server's local state WITHOUT confirming it is current.

    It may lag acknowledged writes (the server may be a partitioned follower or a deposed
    leader): use it only where an old value is acceptable. ``server`` is the server's index.
    """

    value: bytes | None
    server: int


@dataclass(frozen=True)
class StaleScan:
    """A range read from one server's local state WITHOUT confirming it is current (see
    :class:`StaleRead`)."""

    pairs: list[tuple[bytes, bytes]]
    server: int
