"""Direct tests of the SkipList API: contracts of each operation, errors, display, shape."""

from __future__ import annotations

import copy
import math
import pickle
import random

import pytest

from skiplist import SkipList, SkipListBuilder
from skiplist.levels import END
from tests.skiplist.skiplist_testkit import check_structure


def filled(keys: list[int], seed: int = 0) -> SkipList[int, str]:
    sl: SkipList[int, str] = SkipList(random.Random(seed))
    for k in keys:
        sl[k] = f"v{k}"
    return sl


def test_insert_does_not_overwrite_and_reports_the_existing_key() -> None:
    sl: SkipList[bytes, bytes] = SkipList(random.Random(1))
    assert sl.insert(b"k", b"first") is True
    assert sl.insert(b"k", b"second") is False
    assert sl[b"k"] == b"first"
    assert len(sl) == 1


def test_put_overwrites_and_says_whether_the_key_was_new() -> None:
    sl: SkipList[bytes, bytes] = SkipList(random.Random(1))
    assert sl.put(b"k", b"1") is True
    assert sl.put(b"k", b"2") is False
    assert sl.get(b"k") == b"2"


def test_missing_keys() -> None:
    sl = filled([1, 2, 3])
    assert sl.get(9) is None
    assert sl.get(9, "d") == "d"
    assert 9 not in sl
    assert sl.delete(9) is False
    assert sl.pop(9, None) is None
    with pytest.raises(KeyError):
        sl[9]
    with pytest.raises(KeyError):
        del sl[9]
    with pytest.raises(KeyError):
        sl.pop(9)
    assert list(sl) == [1, 2, 3]


def test_pop_returns_the_value_and_removes_the_key() -> None:
    sl = filled([1, 2, 3])
    assert sl.pop(2) == "v2"
    assert list(sl.items()) == [(1, "v1"), (3, "v3")]


def test_any_totally_ordered_hashable_key_type() -> None:
    sl: SkipList[tuple[str, int], int] = SkipList(random.Random(2))
    for i, key in enumerate([("b", 2), ("a", 9), ("b", 1), ("a", 10)]):
        sl[key] = i
    assert list(sl) == [("a", 9), ("a", 10), ("b", 1), ("b", 2)]
    assert sl.floor(("a", 99)) == (("a", 10), 3)
    assert sl.ceiling(("a", 99)) == (("b", 1), 2)


def test_range_bounds_and_limit() -> None:
    sl = filled(list(range(0, 20, 2)))
    assert [k for k, _ in sl.range(4, 10)] == [4, 6, 8]
    assert [k for k, _ in sl.range(5, 11)] == [6, 8, 10]
    assert [k for k, _ in sl.range(None, 5)] == [0, 2, 4]
    assert [k for k, _ in sl.range(15)] == [16, 18]
    assert [k for k, _ in sl.range(4, None, 2)] == [4, 6]
    assert list(sl.range(4, 10, 0)) == []
    assert list(sl.range(10, 4)) == []
    with pytest.raises(ValueError, match="limit"):
        sl.range(limit=-1)


def test_first_last_floor_ceiling() -> None:
    empty: SkipList[int, str] = SkipList(random.Random(0))
    assert empty.first() is None
    assert empty.last() is None
    assert empty.floor(1) is None
    assert empty.ceiling(1) is None
    sl = filled([10, 20, 30])
    assert sl.first() == (10, "v10")
    assert sl.last() == (30, "v30")
    assert sl.floor(25) == (20, "v20")
    assert sl.floor(20) == (20, "v20")
    assert sl.floor(5) is None
    assert sl.ceiling(25) == (30, "v30")
    assert sl.ceiling(31) is None


def test_structural_change_during_iteration_raises() -> None:
    sl = filled([1, 2, 3])
    it = iter(sl)
    next(it)
    sl[4] = "v4"
    with pytest.raises(RuntimeError, match="changed size"):
        next(it)
    scan = sl.range(1)
    next(scan)
    del sl[3]
    with pytest.raises(RuntimeError, match="changed size"):
        list(scan)


def test_value_change_during_iteration_is_allowed_and_seen() -> None:
    sl = filled([1, 2, 3])
    seen = []
    for key, value in sl.items():
        seen.append(value)
        if key == 1:
            sl[3] = "changed"
    assert seen == ["v1", "v2", "changed"]


def test_from_sorted_rejects_unsorted_or_duplicate_keys() -> None:
    with pytest.raises(ValueError, match="strictly ascending"):
        SkipList.from_sorted([(1, "a"), (3, "b"), (2, "c")])
    with pytest.raises(ValueError, match="strictly ascending"):
        SkipList.from_sorted([(1, "a"), (1, "b")])


def test_builder_accepts_batches_and_single_entries() -> None:
    builder: SkipListBuilder[int, int] = SkipListBuilder(random.Random(0))
    builder.extend((i, i * i) for i in range(10))
    builder.add(10, 100)
    with pytest.raises(ValueError):
        builder.add(10, 0)
    with pytest.raises(ValueError):
        builder.extend([(11, 1), (12, 2), (12, 3), (13, 4)])  # keeps what precedes the fault
    sl = builder.build()
    assert list(sl.items()) == [(i, i * i) for i in range(11)] + [(11, 1), (12, 2)]
    check_structure(sl)


def test_clear_empties_and_the_map_stays_usable() -> None:
    sl = filled(list(range(100)))
    sl.clear()
    assert len(sl) == 0
    assert list(sl) == []
    check_structure(sl)
    sl[5] = "five"
    assert list(sl.items()) == [(5, "five")]


def test_tower_heights_are_geometric_with_p_one_quarter() -> None:
    n = 40_000
    sl = filled(random.Random(3).sample(range(10**9), n), seed=4)
    check_structure(sl)
    counts = []
    head = sl._top
    while head is not None:
        count, node = 0, head.right
        while node is not END:
            count, node = count + 1, node.right
        counts.append(count)
        head = head.down
    counts.reverse()  # level 0 first
    assert counts[0] == n
    for level in (1, 2, 3):
        expected = n / 4**level
        assert abs(counts[level] - expected) < 5 * math.sqrt(expected), counts
    # The height adapts to the size: about log4(n) + 1 levels, never far more.
    assert len(counts) <= math.log(n, 4) + 3


def test_ascending_inserts_with_gaps_of_every_size() -> None:
    # Exercises the finger: near the last key (short climb), far from it (climb gives up and
    # searches from the top), after a delete (finger forgotten), and appends past the end.
    rng = random.Random(11)
    existing = list(range(0, 40_000, 2))
    sl = SkipList.from_sorted([(k, "old") for k in existing], random.Random(12))
    assert sl._height >= 6
    model = dict.fromkeys(existing, "old")
    key = -1
    for step in range(3000):
        key += rng.choice([2, 2, 4, 10, 50, 300, 2000])
        if key >= 50_000:
            key = rng.randrange(-5, 100)
        if key % 2:
            sl[key] = "new"
            model[key] = "new"
        if step % 97 == 0:
            victim = rng.choice(existing)
            sl.pop(victim, None)
            model.pop(victim, None)
    check_structure(sl)
    assert list(sl.items()) == sorted(model.items())


def test_height_shrinks_when_entries_are_deleted() -> None:
    keys = list(range(5000))
    sl = filled(keys, seed=5)
    tall = sl._height
    for k in keys[:-3]:
        del sl[k]
    check_structure(sl)
    assert sl._height < tall
    assert list(sl) == keys[-3:]


def test_the_same_rng_seed_gives_the_same_shape() -> None:
    keys = random.Random(6).sample(range(1000), 200)
    assert filled(keys, seed=9).display(200) == filled(keys, seed=9).display(200)
    assert filled(keys, seed=9).display(200) != filled(keys, seed=10).display(200)


def test_without_an_rng_each_map_gets_its_own() -> None:
    a: SkipList[int, int] = SkipList()
    b: SkipList[int, int] = SkipList()
    assert isinstance(a._rng, random.Random)
    assert a._rng is not b._rng


def test_display_draws_each_tower_as_a_column() -> None:
    sl = SkipList.from_sorted([(k, k * 10) for k in range(1, 9)])
    assert sl.display() == "\n".join(
        [
            "L1 |-- -- -- 4  -- -- -- 8",
            "L0 |1  2  3  4  5  6  7  8",
            "   |10 20 30 40 50 60 70 80",
        ]
    )


def test_display_limits_columns_and_counts_the_rest() -> None:
    sl = filled(list(range(50)))
    text = sl.display(limit=5)
    rows = text.splitlines()
    assert rows[-1] == "... 45 more entries"
    assert rows[-3].startswith("L0 |0")
    assert rows[-3].split("|")[1].split() == ["0", "1", "2", "3", "4"]
    assert repr(sl) == f"<SkipList len=50 levels={sl._height}>"


def test_display_of_an_empty_map() -> None:
    assert SkipList().display() == "L0 |\n   |"


def test_copies_and_pickles_are_independent_working_maps() -> None:
    sl = filled([3, 1, 2])
    for clone in (copy.copy(sl), copy.deepcopy(sl), pickle.loads(pickle.dumps(sl))):
        assert list(clone.items()) == list(sl.items())
        clone[0] = "zero"
        del clone[3]
        check_structure(clone)
        assert list(clone) == [0, 1, 2]
    assert list(sl) == [1, 2, 3]
