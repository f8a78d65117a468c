"""The operation mix, keys and values of ``raftkv bench``, and their validation."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from loadgen.workload import (
    OPS,
    Mix,
    OpPicker,
    Workload,
    WorkloadError,
    make_keys,
    parse_mix,
    preload_value,
    split_evenly,
)


def test_a_mix_is_normalized_in_ops_order() -> None:
    mix = parse_mix("cas=10, get=50,put=30,append=10")
    assert mix.as_dict() == {"get": 0.5, "put": 0.3, "append": 0.1, "cas": 0.1}
    assert mix.active() == list(OPS)
    assert parse_mix("put=1").active() == ["put"]


def test_read_ratio_is_gets_and_puts() -> None:
    assert Mix.read_ratio(0.25).as_dict() == {"get": 0.25, "put": 0.75, "append": 0.0, "cas": 0.0}
    assert Mix.read_ratio(1.0).active() == ["get"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("get=50,scan=50", "unknown operation 'scan'"),
        ("get=50,get=10", "names get twice"),
        ("get", "op=weight"),
        ("=5", "op=weight"),
        ("get=lots", "not a number"),
        ("get=-1,put=2", ">= 0"),
        ("get=nan", ">= 0"),
        ("get=inf", ">= 0"),
        ("get=0,put=0", "positive weight"),
    ],
)
def test_a_bad_mix_is_refused_with_a_message(text: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        parse_mix(text)


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_a_read_ratio_outside_zero_one_is_refused(ratio: float) -> None:
    with pytest.raises(WorkloadError, match="read-ratio"):
        Mix.read_ratio(ratio)


def workload(**changes: object) -> Workload:
    fields: dict[str, object] = {
        "clients": 4,
        "keys": 1000,
        "key_size": 16,
        "value_size": 100,
        "mix": Mix.read_ratio(0.5),
        "seed": 1,
    }
    fields.update(changes)
    return Workload(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clients": 0}, "--clients"),
        ({"clients": -3}, "--clients"),
        ({"keys": 0}, "--keys"),
        ({"value_size": -1}, "--value-size"),
        ({"keys": 1000, "key_size": 3}, "--key-size 3 is too small"),
    ],
)
def test_bad_workload_parameters_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        workload(**changes)


def test_a_workload_travels_as_json() -> None:
    original = workload(mix=parse_mix("get=1,cas=3"))
    assert Workload.from_dict(original.to_dict()) == original


def test_keys_are_distinct_and_of_the_asked_size() -> None:
    keys = make_keys(1000, 4)
    assert len(set(keys)) == 1000
    assert {len(key) for key in keys} == {4}
    assert make_keys(3, 16)[2] == b"k000000000000002"
    assert len(preload_value(100)) == 100 and preload_value(0) == b""


def test_split_evenly() -> None:
    assert split_evenly(10, 3) == [4, 3, 3]
    assert split_evenly(2, 4) == [1, 1, 0, 0]
    with pytest.raises(WorkloadError):
        split_evenly(3, 0)


def test_the_picker_follows_the_mix_and_covers_the_keys() -> None:
    picker = OpPicker(parse_mix("get=60,append=30,cas=10"), 50, random.Random(7))
    draws = [picker.pick() for _ in range(20_000)]
    ops = Counter(OPS[op] for op, _ in draws)
    assert set(ops) == {"get", "append", "cas"}
    assert ops["get"] / 20_000 == pytest.approx(0.6, abs=0.02)
    assert ops["append"] / 20_000 == pytest.approx(0.3, abs=0.02)
    assert {k for _, k in draws} == set(range(50))


def test_the_picker_is_reproducible_from_its_seed() -> None:
    mix = parse_mix("get=1,put=1")
    first = OpPicker(mix, 100, random.Random(3))
    second = OpPicker(mix, 100, random.Random(3))
    assert [first.pick() for _ in range(100)] == [second.pick() for _ in range(100)]
