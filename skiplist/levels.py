"""The linked levels a ``SkipList`` is made of: its nodes, the two sentinels, and the bulk linking
of towers from sorted keys (``SkipListBuilder``, snapshot loads).

Level 0 is a singly linked list of every entry in key order; each level above is a sparser linked
list whose nodes point ``down`` to the node of the same key one level lower. Every level starts at
a head node (key ``HEAD``, never compared: a head is only ever a left neighbour) and ends at
``END``. Internal to the package: the map's search, insert and delete loops in
``skiplist.skiplist`` walk these nodes directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import accumulate, repeat
from typing import Any

__all__ = ["END", "HEAD", "MAX_LEVEL", "Node", "append_towers"]

#: Levels drawn from 32 random bits at most: enough for 4**16 (4 billion) entries.
MAX_LEVEL = 17

#: The ``key`` of every head node, and ``pop``'s "no default": no key or value is this object.
HEAD: Any = object()


class Node:
    """One level of one entry's tower (or a level's head, whose key is ``HEAD``)."""

    __slots__ = ("down", "key", "right")

    # ``right`` comes first so that ``accumulate(keys, Node, initial=right)`` chains nodes in C.
    def __init__(self, right: Node, key: Any, down: Node | None = None) -> None:
        self.key = key
        self.right = right
        self.down = down


class _Greatest:
    """The key of ``END``: compares as greater than any key, so ``END.key < key`` is False."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False


#: The right neighbour of the last node of every level, in every map. A search loop then needs
#: only ``r.key < key`` to stop, not also ``r is not None`` (about 10% faster searches); the
#: comparison with ``_Greatest`` costs a Python call, but only once or twice per search. Nothing
#: ever writes to this node: it is never a left neighbour.
END: Node = Node.__new__(Node)
END.key = _Greatest()


def append_towers(tails: list[Node], top: Node, count: int, keys: Sequence[Any]) -> Node:
    """Link ``keys`` (ascending, after every key so far) as towers of the ideal shape after
    ``tails``, the rightmost node of each level; return the new top head.

    ``count`` entries came before: entry number ``count + j + 1`` (from 1) gets 1 + (trailing zero
    bit pairs of that number) levels. A level that does not exist yet gets a head above ``top``
    and joins ``tails``. Each level is linked with C-level loops (``map`` over its keys, a slice
    of every 4th node of the level below as its ``down`` links), so no Python bytecode runs per
    entry.
    """
    size = len(keys)
    below = _chain(keys, None)
    tails[0].right = below[0]
    tails[0] = below[-1]
    below_first, below_step = 0, 1
    level, step = 1, 4
    while True:
        # Entry number count + j + 1 reaches this level when it is a multiple of step.
        first = (step - 1 - count) % step
        if first >= size:
            return top
        downs = below[(first - below_first) // below_step :: 4]
        nodes = _chain(keys[first::step], downs)
        if level == len(tails):
            top = Node(END, HEAD, top)
            tails.append(top)
        tails[level].right = nodes[0]
        tails[level] = nodes[-1]
        below, below_first, below_step = nodes, first, step
        level += 1
        step *= 4


def _chain(keys: Sequence[Any], downs: Sequence[Node] | None) -> list[Node]:
    """New nodes for ``keys`` in key order, each linked to the next, the last one to ``END``,
    pointing down at ``downs`` (None: a level-0 chain). Every loop runs in C: ``accumulate``
    builds the chain from the right end, each new node taking the previous one as its right."""
    nodes = list(accumulate(reversed(keys), Node, initial=END))
    del nodes[0]  # END itself
    nodes.reverse()
    if downs is not None:
        deque(map(setattr, nodes, repeat("down"), downs), 0)
    return nodes
