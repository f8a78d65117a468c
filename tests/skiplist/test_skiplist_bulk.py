"""The bulk paths: a map built batch by batch equals one built by inserts, for every query, and
``batches`` streams exactly the entries in order."""

from __future__ import annotations

import gc
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skiplist import SkipList, SkipListBuilder
from tests.skiplist.skiplist_testkit import check_structure

KEYS = st.lists(st.integers(-1000, 1000), unique=True, max_size=300).map(sorted)


def cut(keys: list[int], cuts: list[int]) -> list[list[int]]:
    """``keys`` split at the given offsets (modulo its length + 1), empty batches included."""
    points = sorted(c % (len(keys) + 1) for c in cuts)
    return [keys[a:b] for a, b in zip([0, *points], [*points, len(keys)], strict=True)]


def bulk(keys: list[int], cuts: list[int]) -> SkipList[int, int]:
    builder: SkipListBuilder[int, int] = SkipListBuilder(random.Random(3))
    for batch in cut(keys, cuts):
        builder.extend_sorted(batch, [k * 10 for k in batch])
    return builder.build()


def inserted(keys: list[int]) -> SkipList[int, int]:
    sl: SkipList[int, int] = SkipList(random.Random(4))
    shuffled = list(keys)
    random.Random(5).shuffle(shuffled)
    for k in shuffled:
        sl[k] = k * 10
    return sl


@settings(max_examples=200, deadline=None)
@given(keys=KEYS, cuts=st.lists(st.integers(0, 1000), max_size=8))
def test_bulk_loaded_map_answers_every_query_like_an_insert_built_one(
    keys: list[int], cuts: list[int]
) -> None:
    loaded, reference = bulk(keys, cuts), inserted(keys)
    check_structure(loaded)
    assert len(loaded) == len(reference)
    assert list(loaded.items()) == list(reference.items())
    assert loaded.first() == reference.first()
    assert loaded.last() == reference.last()
    for probe in range(-1002, 1003, 7):
        assert loaded.get(probe) == reference.get(probe)
        assert (probe in loaded) == (probe in reference)
        assert loaded.floor(probe) == reference.floor(probe)
        assert loaded.ceiling(probe) == reference.ceiling(probe)
        assert list(loaded.range(probe, probe + 50, 5)) == list(
            reference.range(probe, probe + 50, 5)
        )


@settings(max_examples=100, deadline=None)
@given(
    keys=KEYS,
    cuts=st.lists(st.integers(0, 1000), max_size=8),
    changes=st.lists(st.tuples(st.booleans(), st.integers(-1100, 1100)), max_size=60),
)
def test_a_bulk_loaded_map_takes_inserts_and_deletes_like_any_other(
    keys: list[int], cuts: list[int], changes: list[tuple[bool, int]]
) -> None:
    loaded, reference = bulk(keys, cuts), inserted(keys)
    for insert, key in changes:
        if insert:
            assert loaded.put(key, -key) == reference.put(key, -key)
        else:
            assert loaded.delete(key) == reference.delete(key)
    check_structure(loaded)
    assert list(loaded.items()) == list(reference.items())


@pytest.mark.parametrize("size", [1, 3, 4, 5, 16, 17, 64, 65, 1000])
def test_bulk_load_has_the_ideal_shape_whatever_the_batches(size: int) -> None:
    keys = list(range(size))
    whole = bulk(keys, [])
    for cuts in ([1], [3, 7], [4, 16, 17], list(range(0, size, 5))):
        assert bulk(keys, cuts).display(limit=size) == whole.display(limit=size)
    assert whole._height == (size.bit_length() + 1) // 2  # levels 0..floor(log4(size))


def test_extend_sorted_keeps_what_precedes_a_bad_key_and_says_which() -> None:
    builder: SkipListBuilder[int, str] = SkipListBuilder()
    builder.extend_sorted([1, 2, 3], ["a", "b", "c"])
    with pytest.raises(ValueError, match="strictly ascending: 5 after 5"):
        builder.extend_sorted([4, 5, 5, 6], ["d", "e", "f", "g"])
    with pytest.raises(ValueError, match="strictly ascending: 0 after 5"):
        builder.extend_sorted([0], ["z"])
    sl = builder.build()
    assert list(sl.items()) == [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]
    check_structure(sl)


def test_extend_sorted_refuses_lengths_that_differ() -> None:
    builder: SkipListBuilder[int, int] = SkipListBuilder()
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        builder.extend_sorted([1, 2], [1])
    assert len(builder.build()) == 0


def test_bulk_load_leaves_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    bulk(list(range(100)), [50])
    assert gc.isenabled()
    gc.disable()
    try:
        bulk(list(range(100)), [50])
        assert not gc.isenabled()
    finally:
        gc.enable()


@settings(max_examples=100, deadline=None)
@given(keys=KEYS, size=st.integers(1, 40))
def test_batches_stream_every_entry_in_order(keys: list[int], size: int) -> None:
    sl = inserted(keys)
    batches = list(sl.batches(size))
    assert all(len(k) == len(v) for k, v in batches)
    assert all(len(k) == size for k, _ in batches[:-1])
    assert all(0 < len(k) <= size for k, _ in batches)
    assert [(k, v) for ks, vs in batches for k, v in zip(ks, vs, strict=True)] == list(sl.items())


def test_batches_refuse_a_map_changed_meanwhile_and_a_bad_size() -> None:
    sl = inserted(list(range(10)))
    batches = sl.batches(3)
    next(batches)
    sl[100] = 1
    with pytest.raises(RuntimeError, match="changed size"):
        next(batches)
    with pytest.raises(ValueError, match="size"):
        sl.batches(0)
