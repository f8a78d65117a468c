"""Shared helpers for the skip-list tests: a structural invariant check."""

from __future__ import annotations

from typing import Any

from skiplist import SkipList
from skiplist.levels import END


def check_structure(sl: SkipList[Any, Any]) -> None:
    """Assert every invariant of the linked levels, the index and the height bookkeeping.

    - each level is strictly ascending and its nodes point down to the node of the same key;
    - level 0 holds exactly the keys of the value dict, in order;
    - every level's keys are a subset of the level below (towers have no holes);
    - every level ends at the shared ``END`` sentinel, which stays untouched;
    - the recorded height is the number of levels, and the top level is not empty unless the
      map is (emptied top levels are dropped).
    """
    heads = []
    head = sl._top
    while head is not None:
        heads.append(head)
        head = head.down
    assert len(heads) == sl._height
    below_keys: list[Any] | None = None
    for head in reversed(heads):
        keys = []
        node = head.right
        while node is not END:
            if keys:
                assert keys[-1] < node.key
            if head.down is not None:
                assert node.down is not None and node.down.key == node.key
            else:
                assert node.down is None
                assert node.key in sl._values
            keys.append(node.key)
            node = node.right
        if below_keys is not None:
            assert set(keys) <= set(below_keys)
        below_keys = keys
        if head.down is None:
            assert len(keys) == len(sl) == len(sl._values)
    assert not hasattr(END, "right")
    assert not hasattr(END, "down")
    if len(heads) > 1:
        assert heads[0].right is not END
