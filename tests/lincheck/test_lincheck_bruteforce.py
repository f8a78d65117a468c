"""The checker agrees with brute force on small random histories, linearizable and not."""

from __future__ import annotations

import random

import pytest
from lincheck_testkit import (
    ALL_KINDS,
    SINGLE_KEY_KINDS,
    Mutation,
    brute_force_linearizable,
    generate,
    replays_in_order,
)

from lincheck import Operation, OpKind, Verdict, check_history

# Operation mixes under which each mutation is likely to be observable.
_K = OpKind
MUTATION_MIX = {
    Mutation.STALE_READ: (_K.GET, _K.GET, _K.PUT, _K.APPEND, _K.CAS, _K.DELETE, _K.SCAN),
    Mutation.DOUBLED_APPEND: (_K.GET, _K.APPEND, _K.APPEND, _K.SCAN),
    Mutation.LOST_WRITE: (_K.GET, _K.PUT, _K.APPEND, _K.GET),
    Mutation.REORDER: ALL_KINDS,
}


def _small_history(seed: int, mutation: str | None) -> list[Operation]:
    rng = random.Random(seed)
    default_mix = rng.choice([SINGLE_KEY_KINDS, ALL_KINDS])
    return generate(
        rng,
        clients=rng.randint(2, 5),
        ops_per_client=2,
        keys=rng.choice([("x",), ("x", "y"), ("x", "y", "z")]),
        kinds=default_mix if mutation is None else MUTATION_MIX[mutation],
        unknown_rate=rng.choice([0.0, 0.2]),
        fail_rate=rng.choice([0.0, 0.1]),
        mutation=mutation,
    )


@pytest.mark.parametrize("seed", range(150))
def test_simulated_atomic_store_histories_are_linearizable(seed: int) -> None:
    history = _small_history(seed, None)
    assert brute_force_linearizable(history)
    assert check_history(history).verdict is Verdict.OK


@pytest.mark.parametrize("mutation", Mutation.ALL)
def test_mutated_histories_get_the_brute_force_verdict(mutation: str) -> None:
    illegal = 0
    for seed in range(200):
        history = _small_history(seed, mutation)
        expected = brute_force_linearizable(history)
        result = check_history(history)
        assert result.ok == expected, (seed, history)
        if not expected:
            illegal += 1
            witness = result.witness
            assert witness is not None
            # The prefix really is a valid sequential run, and something could not follow it.
            assert replays_in_order(witness.linearized)
            assert witness.unplaced
    # The mutations must actually produce violations often enough to test something.
    assert illegal >= 15, illegal


@pytest.mark.parametrize("seed", range(40))
def test_larger_simulated_histories_are_accepted(seed: int) -> None:
    # Too large for brute force; a real atomic store must still pass (no false alarms).
    rng = random.Random(10_000 + seed)
    history = generate(
        rng,
        clients=rng.randint(3, 6),
        ops_per_client=rng.randint(5, 15),
        keys=rng.choice([("x",), ("x", "y", "z")]),
        kinds=ALL_KINDS,
        unknown_rate=0.1,
        fail_rate=0.05,
        max_duration=150,
    )
    assert check_history(history).ok
