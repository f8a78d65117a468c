"""The sequential specification of the KV service that histories are checked against.

A state is an immutable, hashable snapshot of the keys of one partition: a tuple of
``(key, value)`` pairs sorted by key, holding only present keys (the empty tuple is the empty
store). Hashability matters: the search caches (linearized set, state) pairs.

:func:`apply` runs one operation sequentially and returns the output the service must give plus
the next state; the output convention is the table in :mod:`lincheck.history`.
:func:`step` is what the search asks: may this operation, with the output the client saw, come
next from this state, and where does it lead? An ``unknown`` operation was not observed, so it
is accepted with whatever output the specification produces.
"""

from __future__ import annotations

from typing import TypeAlias

from lincheck.history import Json, Operation, OpKind, Status

State: TypeAlias = tuple[tuple[str, str], ...]
EMPTY_STATE: State = ()


def _position(state: State, key: str) -> int:
    # Linear: partitions hold one key or a handful, and a new state is O(keys) to build anyway.
    for i, (present, _) in enumerate(state):
        if present >= key:
            return i
    return len(state)


def lookup(state: State, key: str) -> str | None:
    """The value of ``key`` in ``state``, or ``None`` if it is missing."""
    for present, value in state:
        if present == key:
            return value
    return None


def _assign(state: State, key: str, value: str) -> State:
    i = _position(state, key)
    if i < len(state) and state[i][0] == key:
        return (*state[:i], (key, value), *state[i + 1 :])
    return (*state[:i], (key, value), *state[i:])


def _remove(state: State, key: str) -> State:
    i = _position(state, key)
    return (*state[:i], *state[i + 1 :])


def _scan(state: State, start: str, end: str | None, limit: int | None) -> list[Json]:
    pairs: list[Json] = []
    for key, value in state[_position(state, start) :]:
        if (end is not None and key >= end) or (limit is not None and len(pairs) >= limit):
            break
        pairs.append([key, value])
    return pairs


def apply(state: State, operation: Operation) -> tuple[Json, State]:
    """Run ``operation`` on ``state``: the output the service must give, and the next state."""
    op, key, value = operation.op, operation.key, operation.value
    current = lookup(state, key)
    if op is OpKind.GET:
        return current, state
    if op is OpKind.PUT:
        assert isinstance(value, str)
        return None, _assign(state, key, value)
    if op is OpKind.APPEND:
        assert isinstance(value, str)
        return None, _assign(state, key, (current or "") + value)
    if op is OpKind.DELETE:
        return current is not None, (state if current is None else _remove(state, key))
    if op is OpKind.PUT_IF_ABSENT:
        assert isinstance(value, str)
        return current is None, (_assign(state, key, value) if current is None else state)
    if op is OpKind.UPDATE:
        assert isinstance(value, str)
        return current is not None, (state if current is None else _assign(state, key, value))
    if op is OpKind.CAS:
        assert isinstance(value, list)
        expected, new = value
        assert isinstance(new, str)
        swapped = current is not None and current == expected
        return swapped, (_assign(state, key, new) if swapped else state)
    assert op is OpKind.SCAN and isinstance(value, list)
    end, limit = value
    assert (end is None or isinstance(end, str)) and (limit is None or isinstance(limit, int))
    return _scan(state, key, end, limit), state


def step(state: State, operation: Operation) -> State | None:
    """The state after ``operation`` if it can take effect next from ``state``, else ``None``.

    An ``ok`` operation fits only if the specification's output equals the recorded one; an
    ``unknown`` one always fits. ``fail`` operations never reach the model.
    """
    output, after = apply(state, operation)
    if operation.status is Status.UNKNOWN or output == operation.output:
        return after
    return None


_CONDITIONAL_OPS = frozenset({OpKind.DELETE, OpKind.PUT_IF_ABSENT, OpKind.UPDATE, OpKind.CAS})


def is_pure(operation: Operation) -> bool:
    """Whether ``operation`` leaves the state unchanged wherever its recorded output fits.

    True for ``ok`` reads and for ``ok`` conditional writes that report ``false`` (they did not
    take effect). An ``unknown`` operation is never pure: it may or may not have taken effect.
    """
    if operation.status is not Status.OK:
        return False
    if operation.op in (OpKind.GET, OpKind.SCAN):
        return True
    return operation.op in _CONDITIONAL_OPS and operation.output is False


def state_as_dict(state: State) -> dict[str, str]:
    """``state`` as a plain dict (for witnesses and messages)."""
    return dict(state)
