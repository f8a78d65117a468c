"""A generic ordered map on a skip list, with a dict beside it for point operations.

Theory of operation
-------------------
The order lives in a skip list drawn as *linked levels* (``skiplist.levels``: the nodes, the head
and end sentinels, and the bulk linking of sorted towers): level 0 is a singly linked list of every
entry in key order; each level above is a sparser linked list whose nodes point ``down`` to the node
of the same key one level lower. Every level starts at a head node (key ``HEAD``, never compared:
a head is only ever a left neighbour). A search starts at the top head, walks ``right`` while the
next key is smaller than the target, then steps ``down``; the last node visited on each level is
that level's predecessor, which is where an insert links its new tower or a delete unlinks it.

A node reaches level ``L + 1`` with probability ``p = 1/4`` given it reached level ``L`` (Pugh's
recommended value: 1.33 nodes per entry instead of 2 for ``p = 1/2`` at about the same number of
steps per search). One ``getrandbits(32)`` call draws the whole tower height: one plus the number
of trailing zero bit *pairs*. The height is capped at ``bit_length(len) // 2 + 1`` (about
``log4(len) + 1``), so the number of levels follows the size, and at ``MAX_LEVEL``; deletes drop
levels that become empty. Maps built from sorted input (``SkipListBuilder``, snapshot loads) get
the ideal shape instead of a random one.

The values live in a dict from key to value beside the skip list, whose nodes hold keys only,
as ``sortedcontainers.SortedDict`` keeps a dict beside its sorted list of keys: ``get``, ``in``
and overwriting an existing key are O(1) and never walk the list; only inserting a new key,
deleting one and the ordered queries (scans, floor/ceiling, min/max) search it, in O(log n)
expected steps, and a scan looks each value up in the dict as it goes. Keys must therefore be
hashable and totally ordered by ``<``, with ``==`` agreeing with that order (bytes, str, int,
tuples of those).

Two shortcuts keep the pure-Python constant factor down: the inner loops are plain ``while``
loops over ``__slots__`` attributes held in locals, and inserts remember the predecessors of the
last inserted key (a *finger*). An insert of a larger key climbs from the finger only as high as
it must, so ascending inserts cost O(1) expected instead of a full search. Why climbing may stop
at the first level whose remembered predecessor is still right (its successor is not smaller
than the new key): the successor on level ``i + 1`` is also on level ``i`` and is never
left of the successor on level ``i``, so it is not smaller than the new key either. Overwrites
do not change the links; any delete forgets the finger, as it may have unlinked a remembered
node.

Randomness is injected: pass a ``random.Random``; without one, ``__init__`` creates a fresh
``random.Random()`` (seeded by the OS, so not reproducible). Tower heights affect speed only,
never results.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from operator import itemgetter, lt
from typing import Any, Generic, Protocol, TypeVar, overload

from skiplist.levels import END, HEAD, MAX_LEVEL, Node, append_towers

__all__ = ["OrderedKey", "SkipList", "SkipListBuilder"]

#: How many levels an insert climbs from the finger before it settles for a search from the top:
#: 4 levels cover keys within about 4**4 = 256 entries of the last inserted one.
_FINGER_CLIMB = 4


class OrderedKey(Protocol):
    """What a key must support: a total order by ``<`` and hashing consistent with ``==``."""

    def __lt__(self, other: Any, /) -> bool: ...

    def __hash__(self) -> int: ...


K = TypeVar("K", bound=OrderedKey)
V = TypeVar("V")
D = TypeVar("D")


class SkipList(Generic[K, V]):
    """An ordered map from ``K`` to ``V``, iterated in ascending key order.

    Point operations (``get``, ``in``, overwrite) are O(1) through a dict; inserting a new
    key, deleting, and the ordered queries are O(log n) expected. Iterators and scans are lazy
    and raise ``RuntimeError`` if a key is inserted or deleted while they run (changing the value
    of an existing key is allowed, as with ``dict``). Not thread-safe.
    """

    __slots__ = (
        "_base",
        "_finger",
        "_finger_key",
        "_height",
        "_mutations",
        "_rng",
        "_top",
        "_values",
    )

    def __init__(self, rng: random.Random | None = None) -> None:
        """Create an empty map drawing tower heights from ``rng``.

        Without ``rng`` a fresh ``random.Random()`` is created here, seeded by the OS: pass a
        seeded one to make the shape (and so the timing) reproducible.
        """
        self._rng = rng if rng is not None else random.Random()
        # The level-0 head: the start of every in-order walk; replaced only by clear().
        self._base = self._top = Node(END, HEAD)
        self._height = 1
        self._values: dict[K, V] = {}
        self._mutations = 0
        # Predecessors (level 0 first) of the last inserted key, or None when unknown.
        self._finger: list[Node] | None = None
        self._finger_key: Any = None

    @staticmethod
    def from_sorted(
        items: Iterable[tuple[K, V]], rng: random.Random | None = None
    ) -> SkipList[K, V]:
        """Build a map in one linear pass from ``items`` in strictly ascending key order.

        Raises ``ValueError`` (and builds nothing) if a key is not greater than the one before.
        """
        builder: SkipListBuilder[K, V] = SkipListBuilder(rng)
        builder.extend(items)
        return builder.build()

    # -- size and membership -------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of entries."""
        return len(self._values)

    def __bool__(self) -> bool:
        """True when the map holds at least one entry."""
        return bool(self._values)

    def __contains__(self, key: object) -> bool:
        """True when ``key`` is present (O(1))."""
        return key in self._values

    # -- point operations ----------------------------------------------------------------------

    def get(self, key: K, default: D | None = None) -> V | D | None:
        """The value stored under ``key``, or ``default`` when absent (O(1))."""
        return self._values.get(key, default)

    def __getitem__(self, key: K) -> V:
        """The value stored under ``key``; raises ``KeyError`` when absent (O(1))."""
        return self._values[key]

    def insert(self, key: K, value: V) -> bool:
        """Add ``key`` -> ``value`` only if ``key`` is absent (the original's ``insert_element``).

        Returns True when inserted, False when the key already existed; the stored value is then
        left unchanged (read it with ``get``).
        """
        if key in self._values:
            return False
        self._link(key, value)
        return True

    def put(self, key: K, value: V) -> bool:
        """Insert or overwrite ``key`` -> ``value``. Returns True when the key was new."""
        values = self._values
        if key in values:
            values[key] = value
            return False
        self._link(key, value)
        return True

    def __setitem__(self, key: K, value: V) -> None:
        """Insert or overwrite ``key`` -> ``value``."""
        values = self._values
        if key in values:
            values[key] = value
        else:
            self._link(key, value)

    def delete(self, key: K) -> bool:
        """Remove ``key``. Returns True when it was present, False when absent."""
        if key not in self._values:
            return False
        self._unlink(key)
        return True

    def __delitem__(self, key: K) -> None:
        """Remove ``key``; raises ``KeyError`` when absent."""
        if key not in self._values:
            raise KeyError(key)
        self._unlink(key)

    @overload
    def pop(self, key: K) -> V: ...

    @overload
    def pop(self, key: K, default: D) -> V | D: ...

    def pop(self, key: K, default: Any = HEAD) -> Any:
        """Remove ``key`` and return its value; when absent return ``default`` if given, else
        raise ``KeyError``."""
        values = self._values
        if key not in values:
            if default is HEAD:
                raise KeyError(key)
            return default
        value = values[key]
        self._unlink(key)
        return value

    def clear(self) -> None:
        """Remove every entry."""
        self._base = self._top = Node(END, HEAD)
        self._height = 1
        self._values.clear()
        self._mutations += 1
        self._finger = None

    # -- ordered queries -----------------------------------------------------------------------

    def first(self) -> tuple[K, V] | None:
        """The entry with the smallest key, or None when empty (O(1))."""
        node = self._base.right
        return None if node is END else (node.key, self._values[node.key])

    def last(self) -> tuple[K, V] | None:
        """The entry with the largest key, or None when empty (O(log n))."""
        x = self._top
        while True:
            r = x.right
            while r is not END:
                x = r
                r = x.right
            if x.down is None:
                break
            x = x.down
        return None if x.key is HEAD else (x.key, self._values[x.key])

    def floor(self, key: K) -> tuple[K, V] | None:
        """The entry with the largest key <= ``key``, or None if there is none."""
        if key in self._values:
            return (key, self._values[key])
        pred = self._predecessor(key)
        return None if pred.key is HEAD else (pred.key, self._values[pred.key])

    def ceiling(self, key: K) -> tuple[K, V] | None:
        """The entry with the smallest key >= ``key``, or None if there is none."""
        if key in self._values:
            return (key, self._values[key])
        succ = self._predecessor(key).right
        return None if succ is END else (succ.key, self._values[succ.key])

    def range(
        self, start: K | None = None, end: K | None = None, limit: int | None = None
    ) -> Iterator[tuple[K, V]]:
        """Entries with ``start <= key < end`` in ascending order, at most ``limit`` of them.

        ``start=None`` means from the smallest key, ``end=None`` up to the largest, and
        ``limit=None`` no limit; a negative limit raises ``ValueError``. The scan is lazy: the
        search for ``start`` happens on the first ``next()``.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return self._scan(start, end, limit)

    def __iter__(self) -> Iterator[K]:
        """Keys in ascending order."""
        for key, _ in self._scan(None, None, None):
            yield key

    def keys(self) -> Iterator[K]:
        """Keys in ascending order."""
        return iter(self)

    def values(self) -> Iterator[V]:
        """Values in ascending key order."""
        for _, value in self._scan(None, None, None):
            yield value

    def items(self) -> Iterator[tuple[K, V]]:
        """``(key, value)`` pairs in ascending key order."""
        return self._scan(None, None, None)

    def batches(self, size: int) -> Iterator[tuple[list[K], list[V]]]:
        """Every entry in ascending key order as ``(keys, values)`` lists of ``size`` entries
        (the last batch may be shorter; none for an empty map).

        The fast way to stream a whole map (snapshots): one short Python step per entry and the
        values looked up by one C-level ``map`` per batch, instead of a generator resumption per
        entry. Raises ``RuntimeError`` if a key is inserted or deleted between batches and
        ``ValueError`` for a ``size`` below 1.
        """
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        return self._batches(size)

    def _batches(self, size: int) -> Iterator[tuple[list[K], list[V]]]:
        mutations = self._mutations
        value_of = self._values.__getitem__
        node = self._base
        remaining = len(self._values)
        while remaining:
            take = size if size < remaining else remaining
            # The size is known, so the walk needs no end test: a comprehension step per entry.
            keys: list[K] = [(node := node.right).key for _ in range(take)]
            remaining -= take
            yield keys, list(map(value_of, keys))
            if self._mutations != mutations:
                raise RuntimeError("SkipList changed size during iteration")

    # -- debugging -----------------------------------------------------------------------------

    def display(self, limit: int = 32) -> str:
        """Draw the levels as text, top level first, one column per entry (first ``limit``).

        Each row is a level; a key appears on every level its tower reaches and ``-`` fills the
        gaps, so towers read as columns. The last row lists the values::

            L1 |    'b'
            L0 |'a' 'b' 'c'
               | 1   2   3
        """
        columns: list[Node] = []
        node = self._base.right
        while node is not END and len(columns) < limit:
            columns.append(node)
            node = node.right
        on_level: list[set[Any]] = []
        head: Node | None = self._top
        while head is not None:
            keys: set[Any] = set()
            n = head.right
            while n is not END and len(keys) < len(columns):
                keys.add(n.key)
                n = n.right
            on_level.append(keys)
            head = head.down
        key_text = [repr(n.key) for n in columns]
        value_text = [repr(self._values[n.key]) for n in columns]
        widths = [max(len(k), len(v)) for k, v in zip(key_text, value_text, strict=True)]
        label_width = len(f"L{self._height - 1}")
        rows = []
        for level, keys in zip(range(self._height - 1, -1, -1), on_level, strict=True):
            cells = [
                text.ljust(w) if n.key in keys else "-" * w
                for n, text, w in zip(columns, key_text, widths, strict=True)
            ]
            rows.append(f"L{level}".ljust(label_width) + " |" + " ".join(cells))
        values = " ".join(text.ljust(w) for text, w in zip(value_text, widths, strict=True))
        rows.append(" " * label_width + " |" + values)
        if len(self) > len(columns):
            rows.append(f"... {len(self) - len(columns)} more entries")
        return "\n".join(row.rstrip() for row in rows)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle, ``copy.copy`` and ``copy.deepcopy`` rebuild from the sorted entries (the
        nodes point at module-level sentinels that must not be copied)."""
        return (SkipList.from_sorted, (list(self.items()), self._rng))

    def __repr__(self) -> str:
        """Size and height, not the contents (use ``display`` or ``items`` for those)."""
        return f"<SkipList len={len(self)} levels={self._height}>"

    # -- internals -----------------------------------------------------------------------------

    def _predecessor(self, key: K) -> Node:
        """The last level-0 node whose key is < ``key`` (the level-0 head if none)."""
        x = self._top
        while True:
            r = x.right
            while r.key < key:
                x = r
                r = x.right
            d = x.down
            if d is None:
                return x
            x = d

    def _scan(self, start: K | None, end: K | None, limit: int | None) -> Iterator[tuple[K, V]]:
        mutations = self._mutations
        values = self._values
        node = self._base.right if start is None else self._predecessor(start).right
        remaining = -1 if limit is None else limit
        while node is not END and remaining != 0:
            key = node.key
            if end is not None and not key < end:
                return
            yield key, values[key]
            if self._mutations != mutations:
                raise RuntimeError("SkipList changed size during iteration")
            node = node.right
            remaining -= 1

    def _link(self, key: K, value: V) -> None:
        """Insert ``key`` (known to be absent) with a fresh tower."""
        values = self._values
        bits = self._rng.getrandbits(32)
        height = ((bits & -bits).bit_length() + 1) >> 1 if bits else MAX_LEVEL
        cap = ((len(values) + 1).bit_length() >> 1) + 1
        if height > cap:
            height = cap
        if height > self._height:
            top = self._top
            for _ in range(height - self._height):
                top = Node(END, HEAD, top)
            self._top = top
            self._height = height
            self._finger = None
        levels = self._height
        finger = self._finger
        update = None
        if finger is not None and self._finger_key < key:
            # Climb from the finger to the lowest level whose remembered predecessor is still
            # the right one; every level above it is right too (see the module docstring). A
            # key far from the last one would climb to the top for nothing, so give up after
            # _FINGER_CLIMB levels and search from the top instead.
            limit = levels if levels < _FINGER_CLIMB else _FINGER_CLIMB
            climb = 0
            while climb < limit:
                r = finger[climb].right
                if not r.key < key:
                    break
                climb += 1
            if climb < limit or climb == levels:
                update = finger
                if climb:
                    level = climb - 1
                    x = finger[level]
                    while True:
                        r = x.right
                        while r.key < key:
                            x = r
                            r = x.right
                        update[level] = x
                        if not level:
                            break
                        x = x.down  # type: ignore[assignment]
                        level -= 1
        if update is None:
            update = [self._top] * levels
            x = self._top
            level = levels - 1
            while True:
                r = x.right
                while r.key < key:
                    x = r
                    r = x.right
                update[level] = x
                if not level:
                    break
                x = x.down  # type: ignore[assignment]
                level -= 1
        pred = update[0]
        node = below = Node(pred.right, key)
        pred.right = node
        update[0] = node
        for level in range(1, height):
            pred = update[level]
            below = Node(pred.right, key, below)
            pred.right = below
            update[level] = below
        values[key] = value
        self._finger = update
        self._finger_key = key
        self._mutations += 1

    def _unlink(self, key: K) -> None:
        """Remove ``key`` (known to be present) from every level and the dict."""
        del self._values[key]
        x: Node | None = self._top
        while x is not None:
            r = x.right
            while r.key < key:
                x = r
                r = x.right
            if r.key == key:
                x.right = r.right
            x = x.down
        # Drop emptied top levels so later searches do not walk them.
        top = self._top
        while top.right is END and top.down is not None:
            top = top.down
            self._height -= 1
        self._top = top
        self._finger = None
        self._mutations += 1


class SkipListBuilder(Generic[K, V]):
    """Builds a ``SkipList`` from entries fed in strictly ascending key order, in linear time.

    Keeps the rightmost node of every level and appends each batch of towers after them, so no
    search is needed; this is how snapshots are loaded. The shape is the ideal one rather than a
    random draw: the i-th entry (from 1) gets 1 + (trailing zero bit pairs of i) levels, so every
    4th entry reaches level 1, every 16th level 2, and so on. That is the shape random heights
    only approximate, it costs no random numbers, and it makes a load reproducible. Entries
    inserted later get random heights from the map's ``rng`` as usual.

    A batch is linked a level at a time with C-level loops (``levels.append_towers``: ``map``
    over the batch's keys, a slice of every 4th node of the level below as the ``down`` links),
    so a load runs no Python bytecode per entry. The cyclic garbage collector is paused while a
    batch is linked: the nodes form no cycles, and a collection every 700 new nodes would
    otherwise rescan the growing map and cost several times the linking itself.

    ``add``/``extend``/``extend_sorted`` raise ``ValueError`` on a key that is not greater than
    the previous one (entries of that call before the bad key are kept); ``build`` hands the map
    over, and the builder must not be used afterwards.
    """

    __slots__ = ("_count", "_last_key", "_list", "_tails")

    def __init__(self, rng: random.Random | None = None) -> None:
        """Start an empty map; ``rng`` is handed to the ``SkipList`` for its later inserts."""
        self._list: SkipList[K, V] = SkipList(rng)
        self._tails: list[Node] = [self._list._top]  # rightmost node of each level
        self._count = 0
        self._last_key: Any = None

    def add(self, key: K, value: V) -> None:
        """Append one entry; ``key`` must be greater than every key added before."""
        self.extend_sorted((key,), (value,))

    def extend(self, items: Iterable[tuple[K, V]]) -> None:
        """Append ``(key, value)`` pairs in strictly ascending key order, after every key added
        before."""
        batch = items if isinstance(items, list) else list(items)
        self.extend_sorted(list(map(itemgetter(0), batch)), list(map(itemgetter(1), batch)))

    def extend_sorted(self, keys: Sequence[K], values: Sequence[V]) -> None:
        """Append ``keys[i] -> values[i]``: keys strictly ascending, after every key added before.

        The two sequences must have the same length (``ValueError`` otherwise, nothing added).
        """
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys but {len(values)} values")
        if not keys:
            return
        bad = self._first_out_of_order(keys)
        if bad is not None:
            self._link(keys[:bad], values[:bad])
            previous = keys[bad - 1] if bad else self._last_key
            raise ValueError(f"keys must be strictly ascending: {keys[bad]!r} after {previous!r}")
        self._link(keys, values)

    def _first_out_of_order(self, keys: Sequence[K]) -> int | None:
        """Index of the first key not greater than the one before it (or than the last key
        added), None when they all ascend. The common case is one C-level pass."""
        if self._count and not self._last_key < keys[0]:
            return 0
        if all(map(lt, keys, islice(keys, 1, None))):
            return None
        return next(i for i in range(1, len(keys)) if not keys[i - 1] < keys[i])

    def _link(self, keys: Sequence[K], values: Sequence[V]) -> None:
        """Append the towers of ``keys`` (known to ascend after the last key) after the tails."""
        size = len(keys)
        if not size:
            return
        sl = self._list
        tails = self._tails
        count = self._count
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            sl._top = append_towers(tails, sl._top, count, keys)
            sl._values.update(zip(keys, values, strict=True))
        finally:
            if paused:
                gc.enable()
        self._count = count + size
        self._last_key = keys[-1]
        sl._height = len(tails)

    def build(self) -> SkipList[K, V]:
        """The finished map."""
        self._list._mutations += 1
        return self._list
