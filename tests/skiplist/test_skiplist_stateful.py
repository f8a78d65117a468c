"""The skip list against a dict model (plus ``sorted`` for the ordered queries).

Hypothesis drives random sequences of every mutating and reading operation on a small key
space, so inserts collide with existing keys, deletes hit and miss, and ascending runs take the
finger path; after every step the structural invariants are checked.
"""

from __future__ import annotations

import bisect
import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from skiplist import SkipList
from tests.skiplist.skiplist_testkit import check_structure

KEYS = st.one_of(st.integers(0, 40).map(lambda i: bytes([i])), st.binary(max_size=3))
VALUES = st.binary(max_size=4)
LIMITS = st.one_of(st.none(), st.integers(0, 8))


class SkipListMatchesDict(RuleBasedStateMachine):
    """Every operation of ``SkipList`` agrees with a plain dict, step by step."""

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[bytes, bytes] = {}
        self.sl: SkipList[bytes, bytes] = SkipList(random.Random(0))

    @initialize(seed=st.integers(0, 2**32 - 1), items=st.dictionaries(KEYS, VALUES, max_size=20))
    def start(self, seed: int, items: dict[bytes, bytes]) -> None:
        self.sl = SkipList.from_sorted(sorted(items.items()), random.Random(seed))
        self.model = dict(items)

    def sorted_keys(self) -> list[bytes]:
        return sorted(self.model)

    @rule(key=KEYS, value=VALUES)
    def insert(self, key: bytes, value: bytes) -> None:
        assert self.sl.insert(key, value) == (key not in self.model)
        self.model.setdefault(key, value)

    @rule(key=KEYS, value=VALUES)
    def put(self, key: bytes, value: bytes) -> None:
        assert self.sl.put(key, value) == (key not in self.model)
        self.model[key] = value

    @rule(key=KEYS, value=VALUES)
    def setitem(self, key: bytes, value: bytes) -> None:
        self.sl[key] = value
        self.model[key] = value

    @rule(keys=st.lists(KEYS, max_size=12), value=VALUES)
    def put_ascending_run(self, keys: list[bytes], value: bytes) -> None:
        for key in sorted(set(keys)):
            self.sl[key] = value
            self.model[key] = value

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        assert self.sl.delete(key) == (key in self.model)
        self.model.pop(key, None)

    @rule(key=KEYS)
    def delitem(self, key: bytes) -> None:
        try:
            del self.sl[key]
        except KeyError:
            assert key not in self.model
        else:
            del self.model[key]

    @rule(key=KEYS, default=VALUES)
    def pop(self, key: bytes, default: bytes) -> None:
        assert self.sl.pop(key, default) == self.model.pop(key, default)

    @rule(key=KEYS)
    def get(self, key: bytes) -> None:
        assert self.sl.get(key) == self.model.get(key)
        assert (key in self.sl) == (key in self.model)
        if key in self.model:
            assert self.sl[key] == self.model[key]

    @rule(start=st.one_of(st.none(), KEYS), end=st.one_of(st.none(), KEYS), limit=LIMITS)
    def scan(self, start: bytes | None, end: bytes | None, limit: int | None) -> None:
        expected = [
            (k, self.model[k])
            for k in self.sorted_keys()
            if (start is None or k >= start) and (end is None or k < end)
        ]
        if limit is not None:
            expected = expected[:limit]
        assert list(self.sl.range(start, end, limit)) == expected

    @rule(key=KEYS)
    def floor_and_ceiling(self, key: bytes) -> None:
        keys = self.sorted_keys()
        i = bisect.bisect_right(keys, key)
        floor = (keys[i - 1], self.model[keys[i - 1]]) if i else None
        j = bisect.bisect_left(keys, key)
        ceiling = (keys[j], self.model[keys[j]]) if j < len(keys) else None
        assert self.sl.floor(key) == floor
        assert self.sl.ceiling(key) == ceiling

    @rule()
    def clear_sometimes(self) -> None:
        # Rare: most runs should build up state.
        if len(self.model) > 30:
            self.sl.clear()
            self.model.clear()

    @invariant()
    def same_contents(self) -> None:
        keys = self.sorted_keys()
        assert len(self.sl) == len(self.model)
        assert bool(self.sl) == bool(self.model)
        assert list(self.sl) == keys
        assert list(self.sl.items()) == [(k, self.model[k]) for k in keys]
        assert list(self.sl.values()) == [self.model[k] for k in keys]
        assert self.sl.first() == ((keys[0], self.model[keys[0]]) if keys else None)
        assert self.sl.last() == ((keys[-1], self.model[keys[-1]]) if keys else None)
        check_structure(self.sl)


SkipListMatchesDict.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestSkipListMatchesDict = SkipListMatchesDict.TestCase
