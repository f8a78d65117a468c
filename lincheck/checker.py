"""Check a whole history: partition it, search each part, explain the first failure.

The verdict is ``ok`` when every part linearizes, ``illegal`` as soon as one part does not (the
remaining parts are not searched), and ``unknown`` when no part failed but at least one ran out
of the time or step budget.

A failure comes with a :class:`Witness`: the longest linearizable prefix the search found for
the failing part, and the operations that could not be placed after it, namely the ``ok``
operations that were free to come next in real time (no remaining operation returned before
they were called), yet none of them led to a full linearization.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lincheck.history import Json, Operation, Status, write_history
from lincheck.model import State, apply, state_as_dict
from lincheck.partition import partition
from lincheck.search import Budget, Outcome, search


class Verdict(StrEnum):
    """The answer for a whole history."""

    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Unplaced:
    """An operation that could come next after the prefix but led nowhere.

    ``model_output`` is what the specification answers for it right after the prefix (which
    shows a stale read at a glance; for an operation whose output fits, the dead end is later).
    """

    operation: Operation
    model_output: Json


@dataclass(frozen=True)
class Witness:
    """Why a part of the history is not linearizable."""

    keys: tuple[str, ...]
    linearized: tuple[Operation, ...]
    state: dict[str, str]
    unplaced: tuple[Unplaced, ...]

    def describe(self, max_prefix: int = 20) -> str:
        """A readable multi-line explanation showing the last ``max_prefix`` prefix operations."""
        lines = [
            f"keys {list(self.keys)}: not linearizable; the longest linearizable prefix has "
            f"{len(self.linearized)} operation(s):"
        ]
        shown = self.linearized[-max_prefix:] if max_prefix > 0 else ()
        first_shown = len(self.linearized) - len(shown) + 1
        if first_shown > 1:
            lines.append(f"  ... {first_shown - 1} earlier operation(s) omitted")
        lines += [f"  {n}. {op.describe()}" for n, op in enumerate(shown, start=first_shown)]
        lines.append(f"state after the prefix: {self.state}")
        lines.append("none of these can be placed next:")
        for item in self.unplaced:
            lines.append(
                f"  {item.operation.describe()}; here the model answers {item.model_output!r}"
            )
        return "\n".join(lines)

    def write(self, stem: str | Path) -> tuple[Path, Path]:
        """Write ``<stem>.linearized.jsonl`` and ``<stem>.unplaced.jsonl`` in the history format.

        Returns the two paths. The first holds the prefix in linearization order.
        """
        linearized_path = Path(f"{stem}.linearized.jsonl")
        unplaced_path = Path(f"{stem}.unplaced.jsonl")
        write_history(linearized_path, self.linearized)
        write_history(unplaced_path, (item.operation for item in self.unplaced))
        return linearized_path, unplaced_path


@dataclass(frozen=True)
class CheckResult:
    """The verdict for a history, with a witness when it is ``illegal``.

    ``unresolved`` lists the key sets of parts that ran out of budget.
    """

    verdict: Verdict
    partitions: int
    operations: int
    steps: int
    witness: Witness | None
    unresolved: tuple[tuple[str, ...], ...]

    @property
    def ok(self) -> bool:
        """True iff the history is linearizable."""
        return self.verdict is Verdict.OK


def _unplaced(
    part_ops: Sequence[Operation], prefix: tuple[int, ...], state: State
) -> tuple[Unplaced, ...]:
    placed = set(prefix)
    remaining = [op for i, op in enumerate(part_ops) if i not in placed]
    first_return = min(op.effective_return for op in remaining)
    return tuple(
        Unplaced(op, apply(state, op)[0])
        for op in remaining
        if op.status is Status.OK and op.call <= first_return
    )


def check_history(
    history: Iterable[Operation],
    *,
    timeout: float | None = None,
    max_steps: int | None = None,
    clock: Callable[[], float] | None = None,
) -> CheckResult:
    """Decide whether ``history`` is linearizable for the KV model, starting from an empty store.

    ``timeout`` (seconds) and ``max_steps`` (search steps, checked every few hundred) bound the
    whole check; when they run out the verdict is ``unknown`` instead of a hang. ``clock``
    replaces ``time.monotonic`` for the timeout.
    """
    operations = list(history)
    budget = (
        Budget(timeout=timeout, max_steps=max_steps)
        if clock is None
        else Budget(timeout=timeout, max_steps=max_steps, clock=clock)
    )
    parts = partition(operations)
    unresolved: list[tuple[str, ...]] = []
    for part in parts:
        result = search(part.operations, budget)
        if result.outcome is Outcome.OUT_OF_BUDGET:
            unresolved.append(part.keys)
        elif result.outcome is Outcome.NOT_LINEARIZABLE:
            witness = Witness(
                keys=part.keys,
                linearized=tuple(part.operations[i] for i in result.longest),
                state=state_as_dict(result.longest_state),
                unplaced=_unplaced(part.operations, result.longest, result.longest_state),
            )
            return CheckResult(
                Verdict.ILLEGAL, len(parts), len(operations), budget.steps_taken, witness, ()
            )
    verdict = Verdict.UNKNOWN if unresolved else Verdict.OK
    return CheckResult(
        verdict, len(parts), len(operations), budget.steps_taken, None, tuple(unresolved)
    )


class LinearizabilityError(AssertionError):
    """Raised by :func:`assert_linearizable`; ``result`` holds the verdict and witness."""

    def __init__(self, message: str, result: CheckResult) -> None:
        super().__init__(message)
        self.result = result


def assert_linearizable(
    history: Iterable[Operation],
    *,
    timeout: float | None = None,
    allow_unknown: bool = False,
    save_to: str | Path | None = None,
) -> CheckResult:
    """Check ``history`` and raise :class:`LinearizabilityError` unless it is linearizable.

    For scenario tests. An ``unknown`` verdict (``timeout`` ran out) raises too unless
    ``allow_unknown``. With ``save_to`` (a path stem), a failing check leaves
    ``<stem>.history.jsonl`` and, for a violation, the witness files next to it.
    """
    operations = list(history)
    result = check_history(operations, timeout=timeout)
    if result.ok or (result.verdict is Verdict.UNKNOWN and allow_unknown):
        return result
    saved = ""
    if save_to is not None:
        history_path = Path(f"{save_to}.history.jsonl")
        write_history(history_path, operations)
        saved = f"\nhistory saved to {history_path}"
        if result.witness is not None:
            paths = result.witness.write(save_to)
            saved += f"; witness in {paths[0]} and {paths[1]}"
    if result.witness is not None:
        raise LinearizabilityError(result.witness.describe() + saved, result)
    unresolved = ", ".join(str(list(keys)) for keys in result.unresolved)
    message = f"linearizability unknown: the budget ran out on keys {unresolved}{saved}"
    raise LinearizabilityError(message, result)
