"""The latency histogram against exact sorted samples: percentiles within its precision, merging
equal to recording the union, and its JSON form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.histogram import SUB_BUCKETS, Histogram, HistogramError, bucket_bounds, bucket_of

# Up to about 18 minutes in nanoseconds, and small values (exact buckets) too.
values = st.integers(min_value=0, max_value=1 << 40)
samples = st.lists(values, min_size=1, max_size=300)
quantiles = st.sampled_from([0.0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0]) | st.floats(0.0, 1.0)


def histogram_of(data: list[int]) -> Histogram:
    histogram = Histogram()
    for value in data:
        histogram.record(value)
    return histogram


def exact_percentile(data: list[int], q: float) -> int:
    ordered = sorted(data)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@given(values)
def test_a_value_lies_in_its_bucket_and_buckets_are_narrow(value: int) -> None:
    low, high = bucket_bounds(bucket_of(value))
    assert low <= value < high
    assert high - low == 1 or (high - low) / low <= 1 / SUB_BUCKETS


def test_bucket_numbers_are_contiguous_across_powers_of_two() -> None:
    previous_high = 0
    for bucket in range(0, 40 * SUB_BUCKETS):
        low, high = bucket_bounds(bucket)
        assert low == previous_high
        assert bucket_of(low) == bucket == bucket_of(high - 1)
        previous_high = high


@settings(max_examples=150, deadline=None)
@given(samples, quantiles)
def test_percentile_is_within_one_percent_of_the_exact_one(data: list[int], q: float) -> None:
    histogram = histogram_of(data)
    exact = exact_percentile(data, q)
    assert abs(histogram.percentile(q) - exact) <= exact * 0.01


@given(samples)
def test_count_sum_min_max_and_mean_are_exact(data: list[int]) -> None:
    histogram = histogram_of(data)
    assert (histogram.count, histogram.total) == (len(data), sum(data))
    assert (histogram.min, histogram.max) == (min(data), max(data))
    assert histogram.percentile(0.0) == min(data) and histogram.percentile(1.0) == max(data)
    assert histogram.mean == pytest.approx(sum(data) / len(data))


@settings(deadline=None)
@given(st.lists(st.lists(values, max_size=100), max_size=5))
def test_merging_equals_recording_the_union(parts: list[list[int]]) -> None:
    merged = Histogram.merged(histogram_of(part) for part in parts)
    union = histogram_of([value for part in parts for value in part])
    assert merged == union
    assert merged.to_dict() == union.to_dict()


@given(st.lists(values, max_size=100))
def test_the_json_form_round_trips(data: list[int]) -> None:
    histogram = histogram_of(data)
    assert Histogram.from_dict(histogram.to_dict()) == histogram


def test_percentiles_are_ordered() -> None:
    histogram = histogram_of([i * i * 1000 for i in range(1, 5000)])
    figures = [histogram.percentile(q) for q in (0.5, 0.9, 0.99, 0.999, 1.0)]
    assert figures == sorted(figures)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"buckets": [[1, 1]], "count": 2, "sum": 1, "min": 1, "max": 1},  # count mismatch
        {"buckets": [[-1, 1]], "count": 1, "sum": 1, "min": 1, "max": 1},
        {"buckets": [[1, 0]], "count": 0, "sum": 0, "min": 0, "max": 0},
        {"buckets": [], "count": 0, "sum": 0, "min": 0},
        {"buckets": [[1, True]], "count": 1, "sum": 1, "min": 1, "max": 1},
    ],
)
def test_a_malformed_json_form_is_refused(bad: object) -> None:
    with pytest.raises(HistogramError):
        Histogram.from_dict(bad)


def test_bad_values_and_quantiles_are_refused() -> None:
    histogram = Histogram()
    with pytest.raises(HistogramError, match="empty"):
        histogram.percentile(0.5)
    with pytest.raises(HistogramError, match="non-negative"):
        histogram.record(-1)
    histogram.record(5)
    with pytest.raises(HistogramError, match="quantile"):
        histogram.percentile(1.5)
    assert histogram.count == 1
