"""What the load generator sends: the operation mix, the keys, the values, and their checks.

A :class:`Workload` is the validated description shared by the parent and every worker (it
travels to the workers as JSON). Keys are ``key_size``-byte ASCII strings ``k000…0<i>`` for
``i`` in ``range(keys)``; the preload writes :func:`preload_value` to every one of them. The
choice of operation and key is drawn from one ``random.Random`` per client, seeded from the run's
seed and the client's global index, so a run is reproducible in what it asks (not in timing).
"""

from __future__ import annotations

import bisect
import random
from dataclasses import asdict, dataclass

__all__ = [
    "OPS",
    "Mix",
    "OpPicker",
    "Workload",
    "WorkloadError",
    "client_seed",
    "make_keys",
    "parse_mix",
    "preload_value",
    "split_evenly",
]

OPS = ("get", "put", "append", "cas")
"""The operations a mix may name, in report order."""


class WorkloadError(ValueError):
    """A workload parameter out of range, or a malformed ``--mix``; the message names it."""


@dataclass(frozen=True)
class Mix:
    """Normalized operation weights (each in [0, 1], summing to 1), in :data:`OPS` order."""

    get: float
    put: float
    append: float
    cas: float

    @classmethod
    def from_weights(cls, weights: dict[str, float]) -> Mix:
        """Normalize non-negative ``weights`` over :data:`OPS` names (absent names weigh 0)."""
        unknown = sorted(set(weights) - set(OPS))
        if unknown:
            raise WorkloadError(f"unknown operation {unknown[0]!r} in the mix (known: {OPS})")
        for name, weight in weights.items():
            if not weight >= 0 or weight == float("inf"):
                raise WorkloadError(f"mix weight of {name} must be a finite number >= 0")
        total = sum(weights.values())
        if total <= 0:
            raise WorkloadError("the mix needs at least one operation with a positive weight")
        return cls(*(weights.get(name, 0.0) / total for name in OPS))

    @classmethod
    def read_ratio(cls, ratio: float) -> Mix:
        """``ratio`` gets and ``1 - ratio`` puts."""
        if not 0.0 <= ratio <= 1.0:
            raise WorkloadError(f"--read-ratio must be in [0, 1], not {ratio}")
        return cls(ratio, 1.0 - ratio, 0.0, 0.0)

    def as_dict(self) -> dict[str, float]:
        """``{op: weight}`` for every operation in :data:`OPS`, zero weights included."""
        return asdict(self)

    def active(self) -> list[str]:
        """The operations with a positive weight, in :data:`OPS` order."""
        return [name for name, weight in self.as_dict().items() if weight > 0]


def parse_mix(text: str) -> Mix:
    """Parse ``get=50,put=30,append=10,cas=10`` (weights in any unit; normalized to sum 1)."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, number = part.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise WorkloadError(f"--mix entries look like op=weight, not {part.strip()!r}")
        if name in weights:
            raise WorkloadError(f"--mix names {name} twice")
        try:
            weights[name] = float(number)
        except ValueError:
            raise WorkloadError(f"--mix weight of {name} is not a number: {number!r}") from None
    return Mix.from_weights(weights)


@dataclass(frozen=True)
class Workload:
    """The load: ``clients`` closed-loop clients each doing one operation at a time, over
    ``keys`` keys of ``key_size`` bytes, writing values of ``value_size`` bytes, in ``mix``."""

    clients: int
    keys: int
    key_size: int
    value_size: int
    mix: Mix
    seed: int

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise WorkloadError(f"--clients must be at least 1, not {self.clients}")
        if self.keys < 1:
            raise WorkloadError(f"--keys must be at least 1, not {self.keys}")
        if self.value_size < 0:
            raise WorkloadError(f"--value-size must not be negative, not {self.value_size}")
        digits = len(str(self.keys - 1))
        if self.key_size < digits + 1:
            raise WorkloadError(
                f"--key-size {self.key_size} is too small for {self.keys} distinct keys "
                f"(needs at least {digits + 1} bytes)"
            )

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form; :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["mix"] = self.mix.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Workload:
        """The workload :meth:`to_dict` described (validated again)."""
        fields = dict(data)
        mix = fields.pop("mix")
        if not isinstance(mix, dict):
            raise WorkloadError("a workload's mix must be an object")
        return cls(mix=Mix.from_weights(mix), **fields)  # type: ignore[arg-type]


def make_keys(count: int, size: int) -> list[bytes]:
    """The ``count`` keys of a workload: ``k`` then ``i`` zero-padded to ``size`` bytes."""
    return [b"k" + str(i).zfill(size - 1).encode() for i in range(count)]


def preload_value(size: int) -> bytes:
    """The value the preload writes to every key."""
    return (b"preload." * (size // 8 + 1))[:size]


def client_seed(seed: int, client: int) -> int:
    """The seed of client number ``client``'s random choices in a run seeded ``seed``."""
    return seed * 1_000_003 + client


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` non-negative integers that differ by at most one."""
    if parts < 1:
        raise WorkloadError(f"cannot split into {parts} parts")
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


class OpPicker:
    """Draws (operation index in :data:`OPS`, key index) pairs for one client."""

    def __init__(self, mix: Mix, keys: int, rng: random.Random) -> None:
        weights = mix.as_dict()
        self._ops = [i for i, name in enumerate(OPS) if weights[name] > 0]
        cumulative: list[float] = []
        running = 0.0
        for i in self._ops:
            running += weights[OPS[i]]
            cumulative.append(running)
        self._cumulative = cumulative
        self._last = len(self._ops) - 1
        self._keys = keys
        self._random = rng.random

    def pick(self) -> tuple[int, int]:
        """The next operation (index in OPS) and key index, drawn independently."""
        r = self._random()
        slot = bisect.bisect_right(self._cumulative, r * self._cumulative[-1])
        return self._ops[min(slot, self._last)], int(self._random() * self._keys)
