"""A mergeable latency histogram with logarithmic buckets (relative precision better than 1%).

Theory of operation
-------------------
Values are non-negative integers (nanoseconds). Below ``2 * SUB_BUCKETS`` every value has its own
bucket, so small values are exact. Above, a value ``v`` with ``b = v.bit_length()`` is cut to its
top ``SUB_BITS + 1`` bits: ``shift = b - SUB_BITS - 1``, bucket ``(shift << SUB_BITS) + (v >>
shift)``. Each power of two is thus split into ``SUB_BUCKETS`` equal buckets whose width is at most
``1 / SUB_BUCKETS`` of their lower bound (0.78% with 128), and bucket numbers are contiguous,
so the counts live in one flat list that grows only when a larger value arrives.

A percentile is the nearest-rank one (the smallest recorded value with at least ``q`` of the
values at or below it), reported as the middle of its bucket clamped to the exact minimum and
maximum: within half a bucket, i.e. 0.4%, of the exact sample percentile. Two histograms merge by
adding counts, which gives exactly the histogram of the union of their values: worker processes
send per-interval histograms and the parent adds them up.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SUB_BITS", "SUB_BUCKETS", "Histogram", "HistogramError", "bucket_bounds", "bucket_of"]

SUB_BITS = 7
SUB_BUCKETS = 1 << SUB_BITS
_EXACT_LIMIT = 2 * SUB_BUCKETS
_MANTISSA_BITS = SUB_BITS + 1


class HistogramError(ValueError):
    """A negative value, or a serialized histogram that is malformed."""


def bucket_of(value: int) -> int:
    """The bucket number of a non-negative integer ``value``."""
    if value < _EXACT_LIMIT:
        return value
    shift = value.bit_length() - _MANTISSA_BITS
    return (shift << SUB_BITS) + (value >> shift)


def bucket_bounds(bucket: int) -> tuple[int, int]:
    """The values ``[low, high)`` bucket number ``bucket`` holds."""
    if bucket < _EXACT_LIMIT:
        return bucket, bucket + 1
    shift = (bucket >> SUB_BITS) - 1
    mantissa = bucket - (shift << SUB_BITS)
    return mantissa << shift, (mantissa + 1) << shift


class Histogram:
    """Counts of non-negative integer values in log buckets, with exact count, sum, min and max.

    :meth:`record` is the hot path (one bucket computation and a list increment); everything else
    is for reporting. Not thread-safe; one per event loop.
    """

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Add one ``value`` (a non-negative int; a negative one raises HistogramError)."""
        if value < _EXACT_LIMIT:
            if value < 0:
                raise HistogramError(f"a histogram records non-negative values, not {value}")
            bucket = value
        else:
            shift = value.bit_length() - _MANTISSA_BITS
            bucket = (shift << SUB_BITS) + (value >> shift)
        counts = self.counts
        if bucket >= len(counts):
            counts.extend([0] * (bucket + 1 - len(counts)))
        counts[bucket] += 1
        if self.count == 0:
            self.min = self.max = value
        elif value > self.max:
            self.max = value
        elif value < self.min:
            self.min = value
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> None:
        """Add every value ``other`` holds to this histogram."""
        if other.count == 0:
            return
        counts = self.counts
        if len(other.counts) > len(counts):
            counts.extend([0] * (len(other.counts) - len(counts)))
        for bucket, n in enumerate(other.counts):
            if n:
                counts[bucket] += n
        if self.count == 0:
            self.min, self.max = other.min, other.max
        else:
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        """A new histogram holding the values of every histogram in ``parts``."""
        result = cls()
        for part in parts:
            result.merge(part)
        return result

    @property
    def mean(self) -> float:
        """The exact mean of the recorded values (0.0 when empty)."""
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> int:
        """The nearest-rank ``q``-quantile (``0 <= q <= 1``), within 0.4% (see the module doc).

        ``q`` 0 gives the exact minimum and 1 the exact maximum; an empty histogram raises
        HistogramError.
        """
        if not 0.0 <= q <= 1.0:
            raise HistogramError(f"a quantile is in [0, 1], not {q}")
        if self.count == 0:
            raise HistogramError("an empty histogram has no percentiles")
        rank = max(1, _ceil(q * self.count))
        if rank == 1:
            return self.min
        if rank >= self.count:
            return self.max
        seen = 0
        for bucket, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                low, high = bucket_bounds(bucket)
                middle = low + (high - low - 1) // 2
                return min(max(middle, self.min), self.max)
        raise AssertionError("bucket counts add up to less than count")

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form: the non-empty buckets as ``[bucket, count]`` pairs and the exact
        count, sum, min and max. :meth:`from_dict` reads it back."""
        return {
            "buckets": [[bucket, n] for bucket, n in enumerate(self.counts) if n],
            "count": self.count,
            "sum": self.total,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: object) -> Histogram:
        """The histogram :meth:`to_dict` described; HistogramError if ``data`` is malformed."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            histogram = cls()
            for bucket, n in data["buckets"]:
                if not (_is_count(bucket) and _is_count(n) and n > 0):
                    raise ValueError(f"bad bucket entry {[bucket, n]!r}")
                if bucket >= len(histogram.counts):
                    histogram.counts.extend([0] * (bucket + 1 - len(histogram.counts)))
                histogram.counts[bucket] += n
            fields = [data[name] for name in ("count", "sum", "min", "max")]
            if not all(_is_count(value) for value in fields):
                raise ValueError(f"count, sum, min and max must be non-negative ints: {fields}")
            histogram.count, histogram.total, histogram.min, histogram.max = fields
            if histogram.count != sum(histogram.counts):
                raise ValueError("count is not the sum of the bucket counts")
        except (KeyError, TypeError, ValueError) as exc:
            raise HistogramError(f"malformed histogram: {exc}") from None
        return histogram

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Histogram(count={self.count}, min={self.min}, max={self.max})"


def _ceil(x: float) -> int:
    whole = int(x)
    return whole + 1 if whole < x else whole


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
