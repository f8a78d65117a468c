"""History records: validation, JSON-lines round trip, malformed input, bytes representation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from lincheck_testkit import ALL_KINDS, generate

from lincheck import (
    FIELDS,
    HistoryError,
    HistoryFormatError,
    Operation,
    OpKind,
    Status,
    bytes_to_str,
    dumps_operation,
    parse_history,
    read_history,
    str_to_bytes,
    write_history,
)


def test_json_round_trip_keeps_every_field(tmp_path: Path) -> None:
    rng = random.Random(7)
    history = generate(
        rng, clients=4, ops_per_client=20, kinds=ALL_KINDS, unknown_rate=0.2, fail_rate=0.1
    )
    history.append(Operation("c-\u00e9", OpKind.GET, "k\x00\xff", None, 'v\n"', 5, 9, Status.OK))
    history.append(Operation(3, OpKind.PUT, "k", "v", None, 5, None, Status.UNKNOWN))
    path = tmp_path / "h.jsonl"
    write_history(path, history)
    assert read_history(path) == history


def test_each_line_has_exactly_the_documented_fields() -> None:
    op = Operation("c1", OpKind.CAS, "k", ["a", "b"], True, 10, 20, Status.OK)
    obj = json.loads(dumps_operation(op))
    assert tuple(obj) == FIELDS
    assert obj == {
        "client_id": "c1",
        "op": "cas",
        "key": "k",
        "value": ["a", "b"],
        "output": True,
        "call": 10,
        "return": 20,
        "status": "ok",
    }


def test_bytes_round_trip_through_latin1_and_keep_their_order() -> None:
    data = [bytes([b]) + b"\x00tail" for b in range(256)]
    texts = [bytes_to_str(d) for d in data]
    assert [str_to_bytes(t) for t in texts] == data
    assert sorted(texts) == [bytes_to_str(d) for d in sorted(data)]
    with pytest.raises(HistoryError, match="latin-1"):
        str_to_bytes("\u20ac")


def test_malformed_line_is_reported_with_its_number() -> None:
    good = dumps_operation(Operation(1, OpKind.GET, "k", None, None, 1, 2, Status.OK))
    with pytest.raises(HistoryFormatError) as info:
        parse_history([good, "", good, "{not json"], source="h.jsonl")
    assert info.value.line_number == 4
    assert str(info.value).startswith("h.jsonl:4: invalid JSON")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"op": "incr"}, "unknown op 'incr'"),
        ({"status": "maybe"}, "unknown status 'maybe'"),
        ({"extra": 1}, "unknown field"),
        ({"value": "v"}, "get takes no value"),
        ({"output": 5}, "get with status ok needs output a string or null"),
        ({"call": "soon"}, "call must be integer"),
        ({"return": 0}, "precedes call"),
        ({"return": None}, "needs a return time"),
        ({"status": "fail", "output": "x"}, "has no output"),
        ({"key": 3}, "key must be a string"),
    ],
)
def test_bad_records_get_a_clear_error(patch: dict[str, object], message: str) -> None:
    obj: dict[str, object] = {
        "client_id": 1,
        "op": "get",
        "key": "k",
        "value": None,
        "output": "x",
        "call": 10,
        "return": 20,
        "status": "ok",
    }
    obj.update(patch)
    with pytest.raises(HistoryFormatError, match=message) as info:
        parse_history([json.dumps(obj)])
    assert info.value.line_number == 1


def test_missing_field_is_named() -> None:
    with pytest.raises(HistoryFormatError, match="missing field\\(s\\): return"):
        parse_history(
            [
                '{"client_id": 1, "op": "get", "key": "k", "value": null, '
                '"output": null, "call": 1, "status": "ok"}'
            ]
        )


@pytest.mark.parametrize(
    ("kind", "value", "output"),
    [
        (OpKind.CAS, "a", True),
        (OpKind.CAS, ["a"], True),
        (OpKind.PUT, None, None),
        (OpKind.PUT, "v", "OK"),
        (OpKind.DELETE, None, None),
        (OpKind.SCAN, ["z", 0], []),
        (OpKind.SCAN, [None, None], [["k"]]),
    ],
)
def test_operation_shapes_are_validated(kind: OpKind, value: object, output: object) -> None:
    with pytest.raises(HistoryError):
        Operation(1, kind, "k", value, output, 1, 2, Status.OK)  # type: ignore[arg-type]


def test_unknown_operations_return_at_infinity() -> None:
    op = Operation(1, OpKind.PUT, "k", "v", None, 1, 5, Status.UNKNOWN)
    assert op.effective_return == float("inf")
    assert Operation(1, OpKind.PUT, "k", "v", None, 1, 5, Status.OK).effective_return == 5
