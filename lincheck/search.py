"""The Wing-Gong / Lowe search for a linearization of one partition.

Theory of operation. Every operation contributes two events, its call and its return, sorted by
time into a doubly linked list (at equal times calls come first, so operations that merely touch
are treated as concurrent; an ``unknown`` operation returns at +infinity). Walking the list from
the head, the calls met before the first return are exactly the operations that may take effect
next: none of them is preceded in real time by an operation still pending.

The search walks that prefix. For a call whose operation the model accepts from the current
state, it "lifts" the operation (unlinks its call and return events), pushes it on a stack, and
restarts from the head. Meeting a return means the operation it belongs to must have taken effect
by now and did not: backtrack by popping the last lifted operation, relinking it, and trying the
call after it. Unlinking and relinking in reverse order (dancing links) restores the list
exactly.

Lowe's cache makes this practical: the future of the search depends only on which operations are
linearized and on the model state, so a (linearized set, state) pair already explored is never
explored again. The set is a Python int used as a bitset.

One pruning rule beyond Lowe's: a *pure* operation (an ``ok`` read, or an ``ok`` conditional
write that reported ``false``) changes no state wherever its output fits. If such an operation
may come next and fits the current state, some linearization extending the current prefix takes
it next, if any exists at all: move it forward in that linearization; it changes nothing for
the operations it jumps over, and none of them returned before it was called, since it may come
next. So a level where a pure operation fits has that single branch, and when it fails the
level fails. This cuts the search by up to 10x on read-heavy histories; the brute-force tests
cover it.

The search succeeds once every ``ok`` operation is linearized: ``unknown`` operations may also
be left out, which is the same as taking effect after everything else. It fails when it must
backtrack from an empty stack; the longest stack seen is the witness prefix.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from lincheck.history import Operation, Status
from lincheck.model import EMPTY_STATE, State, is_pure, step

# How many search steps run between two looks at the clock.
_CLOCK_INTERVAL = 512


class Budget:
    """A shared allowance of search steps and wall time; ``None`` means unlimited.

    ``clock`` returns seconds from a monotonic source (injectable for tests).
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        max_steps: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {timeout}")
        if max_steps is not None and max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {max_steps}")
        self._clock = clock
        self._deadline = math.inf if timeout is None else clock() + timeout
        self._steps_left = math.inf if max_steps is None else max_steps
        self.steps_taken = 0

    def spend(self, steps: int) -> bool:
        """Charge ``steps``; return False once the step allowance or the time is used up."""
        self.steps_taken += steps
        self._steps_left -= steps
        return self._steps_left >= 0 and self._clock() < self._deadline


class Outcome(Enum):
    """How the search of one partition ended."""

    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    OUT_OF_BUDGET = "out of budget"


@dataclass(frozen=True)
class SearchResult:
    """The verdict for one partition.

    ``longest`` is the longest linearizable prefix found (indices into the searched operations,
    in linearization order) and ``longest_state`` the model state after it; both are meaningful
    only when the outcome is NOT_LINEARIZABLE.
    """

    outcome: Outcome
    longest: tuple[int, ...]
    longest_state: State


def search(operations: Sequence[Operation], budget: Budget) -> SearchResult:
    """Decide whether ``operations`` (no ``fail`` ones) linearize from the empty state."""
    n = len(operations)
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(operations):
        events.append((op.call, 0, i))
        events.append((op.effective_return, 1, i))
    events.sort()

    # Nodes 1..2n are events in time order; 0 is the head and 2n + 1 the tail sentinel.
    tail = 2 * n + 1
    nxt = [*range(1, tail + 1), tail]
    prv = [0, *range(0, tail)]
    node_op = [-1] * (tail + 1)
    is_call = [False] * (tail + 1)
    match = [0] * (tail + 1)
    call_node = [0] * n
    for node, (_, kind, i) in enumerate(events, start=1):
        node_op[node] = i
        if kind == 0:
            is_call[node] = True
            call_node[i] = node
        else:
            match[call_node[i]] = node
    definite = [op.status is Status.OK for op in operations]
    pure = [is_pure(op) for op in operations]

    def lift(call: int) -> None:
        ret = match[call]
        nxt[prv[call]] = nxt[call]
        prv[nxt[call]] = prv[call]
        nxt[prv[ret]] = nxt[ret]
        prv[nxt[ret]] = prv[ret]

    def unlift(call: int) -> None:
        ret = match[call]
        nxt[prv[ret]] = ret
        prv[nxt[ret]] = ret
        nxt[prv[call]] = call
        prv[nxt[call]] = call

    pending_definite = sum(definite)
    linearized = 0
    state: State = EMPTY_STATE
    cache: set[tuple[int, State]] = set()
    # (call node, state before it, forced): a forced entry was the only branch of its level.
    stack: list[tuple[int, State, bool]] = []
    longest: list[int] = []
    longest_state: State = EMPTY_STATE
    # longest[:agree] equals the stack's operations, so a new record copies only the rest.
    agree = 0
    steps = 0
    node = nxt[0]
    fresh = True
    while pending_definite:
        steps += 1
        if steps == _CLOCK_INTERVAL:
            if not budget.spend(steps):
                return SearchResult(Outcome.OUT_OF_BUDGET, (), EMPTY_STATE)
            steps = 0
        dead_end = False
        if fresh:
            # A new level: if a pure operation fits, it is the level's only branch.
            fresh = False
            candidate = nxt[0]
            while is_call[candidate]:
                i = node_op[candidate]
                if pure[i] and step(state, operations[i]) is not None:
                    bits = linearized | (1 << i)
                    if (bits, state) in cache:
                        dead_end = True
                    else:
                        cache.add((bits, state))
                        stack.append((candidate, state, True))
                        linearized = bits
                        pending_definite -= 1
                        lift(candidate)
                        node = nxt[0]
                        fresh = True
                    break
                candidate = nxt[candidate]
            if fresh:
                continue
        if not dead_end and is_call[node]:
            i = node_op[node]
            # Pure operations were all tried above and do not fit at this level.
            after = None if pure[i] else step(state, operations[i])
            if after is not None:
                bits = linearized | (1 << i)
                if (bits, after) not in cache:
                    cache.add((bits, after))
                    stack.append((node, state, False))
                    state, linearized = after, bits
                    pending_definite -= definite[i]
                    lift(node)
                    node = nxt[0]
                    fresh = True
                    continue
            node = nxt[node]
            continue
        # A return (its operation had to be linearized by now) or a dead end: backtrack to
        # the nearest level that still has branches to try.
        if len(stack) > len(longest):
            del longest[agree:]
            longest.extend(node_op[entry[0]] for entry in stack[agree:])
            longest_state, agree = state, len(stack)
        forced = True
        while forced:
            if not stack:
                budget.spend(steps)
                return SearchResult(Outcome.NOT_LINEARIZABLE, tuple(longest), longest_state)
            node, state, forced = stack.pop()
            i = node_op[node]
            linearized ^= 1 << i
            pending_definite += definite[i]
            unlift(node)
        agree = min(agree, len(stack))
        node = nxt[node]
    budget.spend(steps)
    return SearchResult(Outcome.LINEARIZABLE, (), EMPTY_STATE)
