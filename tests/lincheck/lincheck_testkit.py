"""Test helpers for lincheck: an independent KV spec, a brute-force checker, a history generator.

Nothing here reuses the checker's code paths (model, partitioning, search), so agreement between
:func:`brute_force_linearizable` and ``check_history`` is evidence, not a tautology.

The generator simulates a real atomic store: each client runs operations one after another,
every operation takes effect at a random instant inside its call..return interval, and outputs
are computed by applying the effects in that order. Mutations then break the simulation in the
ways real systems break: a stale read, a doubled append, a lost write, two non-overlapping
operations applied in the wrong order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from lincheck import Json, Operation, OpKind, Status

ALL_KINDS = tuple(OpKind)
SINGLE_KEY_KINDS = tuple(kind for kind in OpKind if kind is not OpKind.SCAN)


def spec_run(store: dict[str, str], kind: OpKind, key: str, value: Json) -> Json:
    """Apply one operation to ``store`` in place and return its output (dict-based spec)."""
    if kind is OpKind.GET:
        return store.get(key)
    if kind is OpKind.PUT:
        assert isinstance(value, str)
        store[key] = value
        return None
    if kind is OpKind.APPEND:
        assert isinstance(value, str)
        store[key] = store.get(key, "") + value
        return None
    if kind is OpKind.DELETE:
        return store.pop(key, None) is not None
    if kind is OpKind.PUT_IF_ABSENT:
        assert isinstance(value, str)
        if key in store:
            return False
        store[key] = value
        return True
    if kind is OpKind.UPDATE:
        assert isinstance(value, str)
        if key not in store:
            return False
        store[key] = value
        return True
    if kind is OpKind.CAS:
        assert isinstance(value, list)
        expected, new = value
        assert isinstance(new, str)
        if key in store and store[key] == expected:
            store[key] = new
            return True
        return False
    assert kind is OpKind.SCAN and isinstance(value, list)
    end, limit = value
    assert (end is None or isinstance(end, str)) and (limit is None or isinstance(limit, int))
    hits: list[Json] = [
        [k, store[k]] for k in sorted(store) if k >= key and (end is None or k < end)
    ]
    return hits if limit is None else hits[:limit]


def brute_force_linearizable(history: Sequence[Operation]) -> bool:
    """Exhaustively try every order consistent with real time (keep histories <= ~8 ops).

    ``fail`` operations are dropped; each ``unknown`` one is either placed somewhere after its
    call or left out. A sequence is complete once every ``ok`` operation is placed.
    """
    ops = [op for op in history if op.status is not Status.FAIL]

    def extend(remaining: list[Operation], order: list[Operation]) -> bool:
        if all(op.status is Status.UNKNOWN for op in remaining):
            return replay(order)
        first_return = min(op.effective_return for op in remaining)
        for i, candidate in enumerate(remaining):
            if candidate.call <= first_return and extend(
                remaining[:i] + remaining[i + 1 :], [*order, candidate]
            ):
                return True
        return False

    def replay(order: list[Operation]) -> bool:
        store: dict[str, str] = {}
        for op in order:
            output = spec_run(store, op.op, op.key, op.value)
            if op.status is Status.OK and output != op.output:
                return False
        return True

    return extend(ops, [])


def replays_in_order(sequence: Sequence[Operation]) -> bool:
    """Whether ``sequence`` is a valid sequential run from an empty store respecting real time."""
    store: dict[str, str] = {}
    for i, op in enumerate(sequence):
        if any(later.effective_return < op.call for later in sequence[i + 1 :]):
            return False
        output = spec_run(store, op.op, op.key, op.value)
        if op.status is Status.OK and output != op.output:
            return False
    return True


@dataclass
class _Planned:
    client_id: int
    kind: OpKind
    key: str
    value: Json
    call: int
    ret: int
    status: Status
    # Instants at which the operation takes effect (empty: never).
    effects: list[float] = field(default_factory=list)
    forced_output: Json = None
    has_forced_output: bool = False


class Mutation:
    """Names of the injected faults understood by :func:`generate`."""

    STALE_READ = "stale_read"
    DOUBLED_APPEND = "doubled_append"
    LOST_WRITE = "lost_write"
    REORDER = "reorder"
    ALL = (STALE_READ, DOUBLED_APPEND, LOST_WRITE, REORDER)


def _random_value(rng: random.Random, kind: OpKind, keys: Sequence[str], pool: str) -> Json:
    if kind in (OpKind.PUT, OpKind.PUT_IF_ABSENT, OpKind.UPDATE):
        return rng.choice(pool)
    if kind is OpKind.APPEND:
        return rng.choice(pool).lower()
    if kind is OpKind.CAS:
        return [rng.choice(pool), rng.choice(pool)]
    if kind is OpKind.SCAN:
        end = rng.choice([None, *keys])
        return [end, rng.choice([None, 1, 2])]
    return None


def generate(
    rng: random.Random,
    *,
    clients: int = 3,
    ops_per_client: int = 2,
    keys: Sequence[str] = ("x", "y"),
    kinds: Sequence[OpKind] = SINGLE_KEY_KINDS,
    unknown_rate: float = 0.0,
    fail_rate: float = 0.0,
    mutation: str | None = None,
    max_gap: int = 30,
    max_duration: int = 60,
    unique_values: bool = False,
) -> list[Operation]:
    """A random history of a real atomic store; with ``mutation``, one fault injected (if any
    operation qualifies; the result may still happen to be linearizable).

    ``unique_values`` makes every written value distinct, as the kvraft tests do (their appends
    carry the client and sequence number); otherwise values come from a tiny pool, which makes
    many orders indistinguishable and the search harder."""
    pool = "ABC"
    planned: list[_Planned] = []
    for client in range(clients):
        t = rng.randrange(max_gap)
        for sequence in range(ops_per_client):
            kind = rng.choice(kinds)
            call = t + rng.randrange(1, max_gap)
            ret = call + rng.randrange(2, max_duration)
            t = ret
            roll = rng.random()
            status = Status.OK
            effects = [rng.uniform(call, ret)]
            if roll < unknown_rate:
                status = Status.UNKNOWN
                # It may take effect long after the client gave up, or never.
                effects = rng.choice([[], [rng.uniform(call, ret + 4 * max_duration)]])
            elif roll < unknown_rate + fail_rate:
                status, effects = Status.FAIL, []
            value = _random_value(rng, kind, keys, pool)
            if unique_values and isinstance(value, str):
                value = f"<{client}.{sequence}>"
            elif unique_values and kind is OpKind.CAS and isinstance(value, list):
                value = [value[0], f"<{client}.{sequence}>"]
            planned.append(
                _Planned(client, kind, rng.choice(keys), value, call, ret, status, effects)
            )
    if mutation is not None:
        _mutate(rng, planned, mutation)
    return _execute(planned)


def _mutate(rng: random.Random, planned: list[_Planned], mutation: str) -> None:
    ok = [p for p in planned if p.status is Status.OK]
    if mutation == Mutation.DOUBLED_APPEND:
        appends = [p for p in ok if p.kind is OpKind.APPEND]
        if appends:
            victim = rng.choice(appends)
            victim.effects.append(victim.effects[0] + rng.uniform(0, 200))
    elif mutation == Mutation.LOST_WRITE:
        writes = [p for p in ok if p.kind in (OpKind.PUT, OpKind.APPEND)]
        if writes:
            rng.choice(writes).effects = []
    elif mutation == Mutation.REORDER:
        pairs = [(a, b) for a in ok for b in ok if a.ret < b.call and a.key == b.key]
        if pairs:
            a, b = rng.choice(pairs)
            a.effects, b.effects = b.effects, a.effects
    elif mutation == Mutation.STALE_READ:
        _stale_read(rng, planned)
    else:
        raise ValueError(f"unknown mutation {mutation!r}")


def _stale_read(rng: random.Random, planned: list[_Planned]) -> None:
    """Make one get return a value its key held at some earlier instant, not the current one."""
    timeline = sorted((t, n) for n, p in enumerate(planned) for t in p.effects)
    store: dict[str, str] = {}
    seen: dict[str, list[str | None]] = {}
    candidates: list[tuple[int, str | None]] = []
    for _, n in timeline:
        p = planned[n]
        before = store.get(p.key)
        output = spec_run(store, p.kind, p.key, p.value)
        history = seen.setdefault(p.key, [None])
        if p.kind is OpKind.GET and p.status is Status.OK:
            stale = [v for v in history if v != output]
            if stale:
                candidates.append((n, rng.choice(stale)))
        if store.get(p.key) != before:
            history.append(store.get(p.key))
    if candidates:
        n, stale_value = rng.choice(candidates)
        planned[n].forced_output = stale_value
        planned[n].has_forced_output = True


def _execute(planned: list[_Planned]) -> list[Operation]:
    timeline = sorted((t, n) for n, p in enumerate(planned) for t in p.effects)
    store: dict[str, str] = {}
    outputs: dict[int, Json] = {}
    for _, n in timeline:
        p = planned[n]
        # A doubled operation reports what its first execution saw.
        outputs.setdefault(n, spec_run(store, p.kind, p.key, p.value))
    history = []
    for n, p in enumerate(planned):
        if p.has_forced_output:
            output = p.forced_output
        elif p.status is Status.OK:
            # A lost write has no entry and still reports its usual output, None.
            output = outputs.get(n)
        else:
            output = None
        history.append(
            Operation(p.client_id, p.kind, p.key, p.value, output, p.call, p.ret, p.status)
        )
    history.sort(key=lambda op: op.call)
    return history
