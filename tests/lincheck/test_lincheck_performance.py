"""Realistic histories check quickly (figures are printed; the bounds are only a sanity net)."""

from __future__ import annotations

import random
import time

import pytest
from lincheck_testkit import generate

from lincheck import Operation, OpKind, Status, Verdict, check_history

KV_MIX = (OpKind.GET, OpKind.GET, OpKind.PUT, OpKind.APPEND, OpKind.APPEND, OpKind.CAS)


def _overlapping_share(history: list[Operation]) -> float:
    """The share of ok operations concurrent with another ok operation on the same key."""
    definite = sorted((op for op in history if op.status is Status.OK), key=lambda op: op.call)
    overlapping: set[int] = set()
    last_by_key: dict[str, Operation] = {}
    for op in definite:
        previous = last_by_key.get(op.key)
        if previous is not None and previous.effective_return >= op.call:
            overlapping.update((id(previous), id(op)))
        if previous is None or op.effective_return > previous.effective_return:
            last_by_key[op.key] = op
    return len(overlapping) / len(definite)


@pytest.mark.parametrize("keys", [20, 1])
def test_five_clients_three_thousand_ops(keys: int) -> None:
    history = generate(
        random.Random(2026),
        clients=5,
        ops_per_client=600,
        keys=[f"key{i}" for i in range(keys)],
        kinds=KV_MIX,
        unknown_rate=0.03,
        fail_rate=0.02,
        max_gap=20,
        max_duration=400,
    )
    started = time.perf_counter()
    result = check_history(history)
    elapsed = time.perf_counter() - started
    share = _overlapping_share(history)
    print(
        f"\nlincheck: {len(history)} ops over {keys} key(s), {share:.0%} overlapping, "
        f"{result.steps} steps, {elapsed:.3f} s"
    )
    assert result.verdict is Verdict.OK
    assert result.partitions == keys
    assert share > 0.2
    assert elapsed < 30.0
