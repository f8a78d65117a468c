"""Explicit checker cases: the bugs it must catch, readable witnesses, unknown and fail semantics,
real-time edge cases, scans across keys, and the budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from lincheck import (
    Json,
    LinearizabilityError,
    Operation,
    OpKind,
    Status,
    Verdict,
    assert_linearizable,
    check_history,
    read_history,
)
from lincheck.partition import Partition, partition


def op(
    client: int,
    kind: str,
    key: str,
    value: Json,
    output: Json,
    call: int,
    ret: int | None,
    status: str = "ok",
) -> Operation:
    return Operation(client, OpKind(kind), key, value, output, call, ret, Status(status))


def test_stale_read_is_caught_with_a_readable_witness(tmp_path: Path) -> None:
    history = [
        op(1, "put", "x", "a", None, 0, 10),
        op(1, "put", "x", "b", None, 20, 30),
        # A deposed leader answers from its old state.
        op(2, "get", "x", None, "a", 40, 50),
        op(3, "put", "y", "z", None, 0, 100),
    ]
    result = check_history(history)
    assert result.verdict is Verdict.ILLEGAL
    witness = result.witness
    assert witness is not None
    assert witness.keys == ("x",)
    assert witness.linearized == (history[0], history[1])
    assert witness.state == {"x": "b"}
    assert [(u.operation, u.model_output) for u in witness.unplaced] == [(history[2], "b")]
    text = witness.describe()
    assert "get('x') -> 'a'" in text
    assert "here the model answers 'b'" in text
    assert "longest linearizable prefix has 2 operation(s)" in text
    linearized_path, unplaced_path = witness.write(tmp_path / "w")
    assert read_history(linearized_path) == list(witness.linearized)
    assert read_history(unplaced_path) == [history[2]]


def test_doubled_append_is_caught() -> None:
    history = [
        op(1, "append", "x", "1", None, 0, 10),
        # A retried append applied twice.
        op(2, "append", "x", "2", None, 20, 30),
        op(3, "get", "x", None, "122", 40, 50),
    ]
    result = check_history(history)
    assert result.verdict is Verdict.ILLEGAL
    assert result.witness is not None
    assert result.witness.state == {"x": "12"}
    assert [u.model_output for u in result.witness.unplaced] == ["12"]
    assert "get('x') -> '122'" in result.witness.describe()


def test_long_prefixes_are_abbreviated_in_the_description() -> None:
    history = [op(1, "append", "x", str(i % 10), None, 10 * i, 10 * i + 5) for i in range(30)]
    history.append(op(2, "get", "x", None, "wrong", 1000, 1010))
    result = check_history(history)
    assert result.witness is not None
    text = result.witness.describe(max_prefix=5)
    assert "... 25 earlier operation(s) omitted" in text
    assert "  26. client 1: append('x', '5')" in text
    assert "  25. " not in text


def test_concurrent_appends_may_land_in_either_order() -> None:
    history = [
        op(1, "append", "x", "1", None, 0, 50),
        op(2, "append", "x", "2", None, 10, 60),
        op(3, "get", "x", None, "21", 70, 80),
    ]
    assert check_history(history).ok
    doubled = [*history[:2], op(3, "get", "x", None, "212", 70, 80)]
    assert not check_history(doubled).ok


def test_lost_write_is_caught() -> None:
    history = [
        op(1, "put", "x", "a", None, 0, 10),
        op(2, "put", "x", "b", None, 20, 30),
        op(3, "get", "x", None, "a", 40, 50),
        op(3, "get", "x", None, "a", 60, 70),
    ]
    assert check_history(history).verdict is Verdict.ILLEGAL


def test_a_read_concurrent_with_a_write_may_see_either_value_but_not_flip_back() -> None:
    write = op(1, "put", "x", "a", None, 0, 100)
    assert check_history([write, op(2, "get", "x", None, None, 10, 20)]).ok
    assert check_history([write, op(2, "get", "x", None, "a", 10, 20)]).ok
    flip = [
        write,
        op(2, "get", "x", None, "a", 10, 20),
        op(3, "get", "x", None, None, 30, 40),
    ]
    assert check_history(flip).verdict is Verdict.ILLEGAL


def test_touching_intervals_count_as_concurrent() -> None:
    assert check_history(
        [op(1, "put", "x", "a", None, 0, 10), op(2, "get", "x", None, None, 10, 20)]
    ).ok
    late = [op(1, "put", "x", "a", None, 0, 10), op(2, "get", "x", None, None, 11, 20)]
    assert not check_history(late).ok


def test_unknown_write_may_take_effect_long_after_the_client_gave_up_or_never() -> None:
    timed_out = op(1, "put", "x", "a", None, 0, 10, "unknown")
    assert check_history([timed_out]).ok
    assert check_history([timed_out, op(2, "get", "x", None, None, 100, 110)]).ok
    # Not visible at first, visible later: it took effect after its client gave up.
    late_effect = [
        timed_out,
        op(2, "get", "x", None, None, 100, 110),
        op(2, "get", "x", None, "a", 200, 210),
    ]
    assert check_history(late_effect).ok
    # Once visible it cannot disappear: it takes effect at most once.
    vanished = [
        timed_out,
        op(2, "get", "x", None, "a", 100, 110),
        op(2, "get", "x", None, None, 200, 210),
    ]
    assert check_history(vanished).verdict is Verdict.ILLEGAL


def test_unknown_return_time_may_be_missing() -> None:
    pending = op(1, "append", "x", "a", None, 0, None, "unknown")
    assert check_history([pending, op(2, "get", "x", None, "a", 5, 6)]).ok


def test_the_same_put_acknowledged_is_required_to_be_visible() -> None:
    acknowledged = op(1, "put", "x", "a", None, 0, 10)
    assert not check_history([acknowledged, op(2, "get", "x", None, None, 20, 30)]).ok


def test_failed_operations_are_dropped() -> None:
    failed = op(1, "put", "x", "a", None, 0, 10, "fail")
    assert check_history([failed, op(2, "get", "x", None, None, 20, 30)]).ok
    assert not check_history([failed, op(2, "get", "x", None, "a", 20, 30)]).ok


def test_conditional_operations_follow_the_output_convention() -> None:
    history = [
        op(1, "update", "x", "u", False, 0, 10),
        op(1, "put_if_absent", "x", "a", True, 20, 30),
        op(2, "put_if_absent", "x", "b", False, 40, 50),
        op(2, "cas", "x", ["b", "c"], False, 60, 70),
        op(1, "cas", "x", ["a", "c"], True, 80, 90),
        op(2, "update", "x", "d", True, 100, 110),
        op(1, "delete", "x", None, True, 120, 130),
        op(2, "delete", "x", None, False, 140, 150),
        op(1, "get", "x", None, None, 160, 170),
    ]
    assert check_history(history).ok
    # Two concurrent compare-and-swaps from the same value cannot both win.
    both_win = [
        op(1, "put", "x", "a", None, 0, 10),
        op(1, "cas", "x", ["a", "b"], True, 20, 50),
        op(2, "cas", "x", ["a", "c"], True, 20, 50),
    ]
    assert check_history(both_win).verdict is Verdict.ILLEGAL


def test_keys_are_checked_independently_and_the_failing_key_is_named() -> None:
    history = [op(1, "put", f"k{i}", "v", None, 0, 10) for i in range(5)]
    history += [op(2, "get", f"k{i}", None, "v", 20, 30) for i in range(5)]
    history[-1] = op(2, "get", "k4", None, "w", 20, 30)
    result = check_history(history)
    assert result.partitions == 5
    assert result.witness is not None
    assert result.witness.keys == ("k4",)


def test_scans_are_checked_across_the_keys_they_cover() -> None:
    # Each key alone is fine, but the two scans saw the two puts in opposite orders.
    history = [
        op(1, "put", "x", "1", None, 0, 100),
        op(2, "put", "y", "1", None, 0, 100),
        op(3, "scan", "a", [None, None], [["y", "1"]], 10, 20),
        op(4, "scan", "a", [None, None], [["x", "1"]], 10, 20),
    ]
    result = check_history(history)
    assert result.partitions == 1
    assert result.verdict is Verdict.ILLEGAL
    assert result.witness is not None
    assert result.witness.keys == ("x", "y")
    consistent = [*history[:3], op(4, "scan", "a", [None, None], [["x", "1"], ["y", "1"]], 30, 40)]
    assert check_history(consistent).ok


def test_scan_range_and_limit() -> None:
    history = [
        op(1, "put", "a", "1", None, 0, 10),
        op(1, "put", "b", "2", None, 20, 30),
        op(1, "put", "c", "3", None, 40, 50),
        op(2, "scan", "b", ["c", None], [["b", "2"]], 60, 70),
        op(2, "scan", "a", [None, 2], [["a", "1"], ["b", "2"]], 80, 90),
        op(2, "scan", "d", ["y", None], [], 100, 110),
        op(3, "put", "z", "9", None, 0, 10),
    ]
    result = check_history(history)
    assert result.ok
    # The unbounded scan glues every key (a limit does not shrink its range); the scan over
    # d..y covers no key of the history and stands alone.
    assert result.partitions == 2
    wrong_limit = [*history[:4], op(2, "scan", "a", [None, 2], [["a", "1"]], 80, 90)]
    assert not check_history(wrong_limit).ok


def _pathological(n: int) -> list[Operation]:
    # n concurrent appends and a read that no order explains: the search must try them all.
    history = [op(i, "append", "x", chr(65 + i), None, 0, 1000) for i in range(n)]
    history.append(op(n, "get", "x", None, "impossible", 2000, 2010))
    return history


def test_budget_in_steps_gives_unknown_instead_of_hanging() -> None:
    result = check_history(_pathological(14), max_steps=20_000)
    assert result.verdict is Verdict.UNKNOWN
    assert result.unresolved == (("x",),)
    assert result.witness is None


def test_timeout_gives_unknown() -> None:
    ticks = iter(range(1_000_000))
    result = check_history(_pathological(14), timeout=5.0, clock=lambda: float(next(ticks)))
    assert result.verdict is Verdict.UNKNOWN


def test_a_failure_elsewhere_wins_over_an_unresolved_key() -> None:
    history = [*_pathological(14), op(9, "get", "y", None, "ghost", 0, 10)]
    result = check_history(history, max_steps=20_000)
    assert result.verdict is Verdict.ILLEGAL
    assert result.witness is not None and result.witness.keys == ("y",)


def test_assert_linearizable_raises_with_the_witness_and_saves_the_history(
    tmp_path: Path,
) -> None:
    good = [op(1, "put", "x", "a", None, 0, 10), op(2, "get", "x", None, "a", 20, 30)]
    assert assert_linearizable(good).ok
    stale = [good[0], op(2, "get", "x", None, None, 20, 30)]
    with pytest.raises(LinearizabilityError, match="not linearizable") as info:
        assert_linearizable(stale, save_to=tmp_path / "run")
    assert info.value.result.verdict is Verdict.ILLEGAL
    assert read_history(tmp_path / "run.history.jsonl") == stale
    assert read_history(tmp_path / "run.unplaced.jsonl") == [stale[1]]


def test_assert_linearizable_treats_unknown_as_failure_unless_allowed() -> None:
    with pytest.raises(LinearizabilityError, match="budget ran out on keys \\['x'\\]"):
        assert_linearizable(_pathological(14), timeout=0.0)
    result = assert_linearizable(_pathological(14), timeout=0.0, allow_unknown=True)
    assert result.verdict is Verdict.UNKNOWN


def test_negative_budgets_are_rejected() -> None:
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        check_history([], timeout=-1.0)
    with pytest.raises(ValueError, match="max_steps must be >= 0"):
        check_history([], max_steps=-1)


def test_empty_history_is_linearizable() -> None:
    result = check_history([])
    assert (result.verdict, result.partitions, result.operations) == (Verdict.OK, 0, 0)


def test_a_record_repeated_in_the_history_counts_twice() -> None:
    # Two identical appends (the same object twice) must both apply.
    append = op(1, "append", "x", "a", None, 0, 10)
    assert check_history([append, append, op(2, "get", "x", None, "aa", 20, 30)]).ok
    result = check_history([append, append, op(2, "get", "x", None, "a", 20, 30)])
    assert result.witness is not None
    assert result.witness.linearized == (append, append)
    assert [u.operation.op for u in result.witness.unplaced] == [OpKind.GET]


def test_unknown_operations_after_every_observation_are_dropped() -> None:
    history = [
        op(1, "put", "x", "a", None, 0, 10),
        op(2, "get", "x", None, "a", 20, 30),
        op(3, "append", "x", "b", None, 30, None, "unknown"),
        op(3, "append", "x", "c", None, 31, None, "unknown"),
    ]
    (part,) = partition(history)
    # The append called exactly at the last return may still precede that get; the later not.
    assert part.operations == tuple(history[:3])
    assert check_history(history).ok
    assert partition(history[3:]) == [Partition(keys=("x",), operations=())]
