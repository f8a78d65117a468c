"""P-compositionality: split a history into parts that can be checked independently.

Linearizability is local (Herlihy and Wing): a history over several objects is linearizable iff
its restriction to each object is. A key is an object for every single-key operation, so the
history splits by key. A scan reads every key in its range at one instant, so it glues together
all keys of the history that fall in that range (keys outside the history never exist: the store
starts empty and only the history's operations write). Parts are the connected components of
"operation touches key": with no scans, one part per key; a scan over everything makes one part.

Operations that cannot matter are dropped: ``fail`` ones (no effect), ``unknown`` reads (no
effect, nothing observed), and, per part, ``unknown`` operations called after every ``ok``
operation of the part returned (they can only take effect after all observations, which is the
same as never; clients still in flight when a test stops leave many of these).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from lincheck.history import READ_ONLY_OPS, Operation, OpKind, Status


@dataclass(frozen=True)
class Partition:
    """One independently checkable part: its keys (sorted) and its operations (history order)."""

    keys: tuple[str, ...]
    operations: tuple[Operation, ...]


def relevant(operation: Operation) -> bool:
    """Whether ``operation`` can influence the verdict (not failed, not an unobserved read)."""
    if operation.status is Status.FAIL:
        return False
    return not (operation.status is Status.UNKNOWN and operation.op in READ_ONLY_OPS)


class _DisjointSets:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def partition(history: Sequence[Operation]) -> list[Partition]:
    """Split ``history`` into independent parts, ordered by their smallest key.

    A scan whose range holds no key of the history forms a part of its own (keyed by its start).
    """
    operations = [op for op in history if relevant(op)]
    keys = sorted({op.key for op in operations if op.op is not OpKind.SCAN})
    key_index = {key: i for i, key in enumerate(keys)}
    # Nodes: one per key, then one per operation (so lone scans still get a part).
    sets = _DisjointSets(len(keys) + len(operations))
    for n, op in enumerate(operations):
        node = len(keys) + n
        if op.op is not OpKind.SCAN:
            sets.union(node, key_index[op.key])
            continue
        assert isinstance(op.value, list)
        end = op.value[0]
        assert end is None or isinstance(end, str)
        first = bisect_left(keys, op.key)
        last = len(keys) if end is None else bisect_left(keys, end)
        for i in range(first, last):
            sets.union(node, i)

    grouped: dict[int, list[Operation]] = {}
    part_keys: dict[int, set[str]] = {}
    for n, op in enumerate(operations):
        root = sets.find(len(keys) + n)
        grouped.setdefault(root, []).append(op)
        if op.op is not OpKind.SCAN:
            part_keys.setdefault(root, set()).add(op.key)
    parts = []
    for root, ops in grouped.items():
        names = part_keys.get(root) or {ops[0].key}
        last_return = max((op.effective_return for op in ops if op.status is Status.OK), default=0)
        kept = tuple(op for op in ops if op.status is Status.OK or op.call <= last_return)
        parts.append(Partition(keys=tuple(sorted(names)), operations=kept))
    parts.sort(key=lambda part: part.keys)
    return parts
