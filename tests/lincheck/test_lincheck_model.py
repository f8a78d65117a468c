"""The checker's model agrees with the independent dict spec on random operation sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lincheck_testkit import spec_run

from lincheck import Json, Operation, OpKind, Status
from lincheck.model import EMPTY_STATE, apply, lookup, state_as_dict, step

KEYS = ("a", "b", "c")
VALUES = ("", "1", "2")


@st.composite
def operations(draw: st.DrawFn) -> tuple[OpKind, str, Json]:
    kind = draw(st.sampled_from(list(OpKind)))
    key = draw(st.sampled_from(KEYS))
    value: Json = None
    if kind in (OpKind.PUT, OpKind.APPEND, OpKind.PUT_IF_ABSENT, OpKind.UPDATE):
        value = draw(st.sampled_from(VALUES))
    elif kind is OpKind.CAS:
        value = [draw(st.sampled_from(VALUES)), draw(st.sampled_from(VALUES))]
    elif kind is OpKind.SCAN:
        end = draw(st.sampled_from([None, *KEYS]))
        value = [end, draw(st.sampled_from([None, 1, 2]))]
    return kind, key, value


@settings(max_examples=200, deadline=None)
@given(st.lists(operations(), max_size=25))
def test_model_matches_the_dict_spec(sequence: list[tuple[OpKind, str, Json]]) -> None:
    state = EMPTY_STATE
    store: dict[str, str] = {}
    for kind, key, value in sequence:
        expected = spec_run(store, kind, key, value)
        record = Operation(1, kind, key, value, expected, 0, 1, Status.OK)
        output, after = apply(state, record)
        assert output == expected
        assert step(state, record) == after
        state = after
        assert state_as_dict(state) == store
        assert list(state) == sorted(store.items())


def test_step_rejects_a_wrong_output_and_accepts_anything_unknown() -> None:
    state = apply(EMPTY_STATE, Operation(1, OpKind.PUT, "k", "v", None, 0, 1, Status.OK))[1]
    assert lookup(state, "k") == "v"
    wrong = Operation(1, OpKind.GET, "k", None, "w", 0, 1, Status.OK)
    assert step(state, wrong) is None
    swap = Operation(1, OpKind.CAS, "k", ["v", "w"], None, 0, None, Status.UNKNOWN)
    assert step(state, swap) == (("k", "w"),)


def test_append_to_a_missing_key_starts_from_empty() -> None:
    record = Operation(1, OpKind.APPEND, "k", "tail", None, 0, 1, Status.OK)
    assert apply(EMPTY_STATE, record)[1] == (("k", "tail"),)
