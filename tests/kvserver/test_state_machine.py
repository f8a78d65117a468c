"""The KV state machine: every operation against a dict model, retries, snapshots, bad entries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Op, Result
from kvserver.state_machine import KVStateMachine
from skiplist.snapshot import SnapshotError


class Client:
    """Numbers its requests like the clerk does."""

    def __init__(self, sm: KVStateMachine, client_id: bytes = b"c1") -> None:
        self.sm = sm
        self.client_id = client_id
        self.next_id = 1

    def command(self, op: Op.ValueType, key: bytes, value: bytes = b"", **kw: object) -> Command:
        c = Command(
            client_id=self.client_id, request_id=self.next_id, op=op, key=key, value=value, **kw
        )  # type: ignore[arg-type]
        self.next_id += 1
        return c

    def do(self, op: Op.ValueType, key: bytes, value: bytes = b"", **kw: object) -> Result:
        result = self.sm.apply(self.command(op, key, value, **kw).SerializeToString())
        assert result is not None
        return result


def machine() -> KVStateMachine:
    return KVStateMachine(random.Random(7))


def test_noop_entry_has_no_result() -> None:
    assert machine().apply(b"") is None


def test_append_appends() -> None:
    """The original implemented Append as Put; ours really appends."""
    c = Client(machine())
    c.do(Op.OP_APPEND, b"k", b"a")
    c.do(Op.OP_APPEND, b"k", b"b")
    assert c.sm.get(b"k") == b"ab"


def test_put_if_absent_refuses_an_existing_key() -> None:
    c = Client(machine())
    assert c.do(Op.OP_PUT_IF_ABSENT, b"k", b"1").err == Err.OK
    assert c.do(Op.OP_PUT_IF_ABSENT, b"k", b"2") == Result(err=Err.KEY_EXISTS, value=b"1")
    assert c.sm.get(b"k") == b"1"


def test_update_needs_an_existing_key() -> None:
    c = Client(machine())
    assert c.do(Op.OP_UPDATE, b"k", b"1").err == Err.NO_KEY
    assert c.sm.get(b"k") is None
    c.do(Op.OP_PUT, b"k", b"1")
    assert c.do(Op.OP_UPDATE, b"k", b"2") == Result(err=Err.OK, value=b"1")
    assert c.sm.get(b"k") == b"2"


def test_delete() -> None:
    c = Client(machine())
    assert c.do(Op.OP_DELETE, b"k").err == Err.NO_KEY
    c.do(Op.OP_PUT, b"k", b"v")
    assert c.do(Op.OP_DELETE, b"k") == Result(err=Err.OK, value=b"v")
    assert c.sm.get(b"k") is None


def test_compare_and_swap() -> None:
    c = Client(machine())
    assert c.do(Op.OP_CAS, b"k", b"1", expected=b"0").err == Err.NO_KEY
    assert c.do(Op.OP_CAS, b"k", b"1", expect_absent=True).err == Err.OK
    assert c.do(Op.OP_CAS, b"k", b"2", expect_absent=True) == Result(
        err=Err.CAS_MISMATCH, value=b"1"
    )
    assert c.do(Op.OP_CAS, b"k", b"2", expected=b"0") == Result(err=Err.CAS_MISMATCH, value=b"1")
    assert c.do(Op.OP_CAS, b"k", b"2", expected=b"1") == Result(err=Err.OK, value=b"1")
    assert c.sm.get(b"k") == b"2"


def test_a_retried_append_applies_once() -> None:
    """A reply lost after the entry committed makes the clerk resend the same RequestId."""
    sm = machine()
    c = Client(sm)
    entry = c.command(Op.OP_APPEND, b"k", b"x").SerializeToString()
    assert sm.apply(entry) == Result(err=Err.OK)
    assert sm.apply(entry) == Result(err=Err.OK)
    assert sm.get(b"k") == b"x"


def test_a_retried_cas_returns_its_first_answer() -> None:
    sm = machine()
    c = Client(sm)
    c.do(Op.OP_PUT, b"k", b"1")
    entry = c.command(Op.OP_CAS, b"k", b"2", expected=b"1").SerializeToString()
    first = sm.apply(entry)
    assert first == Result(err=Err.OK, value=b"1")
    assert sm.apply(entry) == first  # not ErrCasMismatch, though the value is now 2


def test_clients_with_the_same_request_ids_do_not_collide() -> None:
    """The original's clients all had one ClientId, so a new client's first Put was dropped."""
    sm = machine()
    Client(sm, b"a").do(Op.OP_PUT, b"k", b"from a")
    Client(sm, b"b").do(Op.OP_PUT, b"k", b"from b")
    assert sm.get(b"k") == b"from b"


def test_a_stale_duplicate_changes_nothing() -> None:
    sm = machine()
    c = Client(sm)
    old = c.command(Op.OP_PUT, b"k", b"old").SerializeToString()
    sm.apply(old)
    c.do(Op.OP_PUT, b"k", b"new")
    assert sm.apply(old) == Result(err=Err.STALE_REQUEST)
    assert sm.get(b"k") == b"new"


def test_an_entry_that_is_not_a_command_is_refused_the_same_way_everywhere() -> None:
    assert machine().apply(b"\xff\xff\xff") == Result(err=Err.BAD_COMMAND)


def test_scan_is_ordered_and_bounded() -> None:
    c = Client(machine())
    for k in (b"b", b"d", b"a", b"c", b"e"):
        c.do(Op.OP_PUT, k, k.upper())
    assert c.sm.scan(b"b", b"e") == [(b"b", b"B"), (b"c", b"C"), (b"d", b"D")]
    assert c.sm.scan(b"", None, 2) == [(b"a", b"A"), (b"b", b"B")]


def restored_copy(sm: KVStateMachine, chunk: int) -> KVStateMachine:
    stream = b"".join(sm.snapshot_chunks())
    other = KVStateMachine(random.Random(99))
    loader = other.snapshot_loader()
    for i in range(0, len(stream), chunk):
        loader.feed(stream[i : i + chunk])
    other.restore(loader)
    return other


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_snapshot_round_trip_keeps_data_and_sessions(chunk: int) -> None:
    sm = machine()
    c = Client(sm)
    for i in range(50):
        c.do(Op.OP_APPEND, b"k%d" % (i % 7), b"\x00%d\n" % i)
    last = c.command(Op.OP_APPEND, b"k0", b"!").SerializeToString()
    sm.apply(last)
    other = restored_copy(sm, chunk)
    assert other.scan() == sm.scan()
    assert other.apply(last) == Result(err=Err.OK)  # the retry is still recognised after restore
    assert other.get(b"k0") == sm.get(b"k0")


def test_snapshot_size_follows_the_data_not_the_history() -> None:
    """6.5840's snapshot-size scenario: 800 ops on one key keep the snapshot small."""
    sm = machine()
    c = Client(sm)
    for i in range(800):
        c.do(Op.OP_PUT, b"x", b"%d" % i)
    assert len(b"".join(sm.snapshot_chunks())) < 200


def test_damaged_snapshot_is_refused_and_state_kept() -> None:
    sm = machine()
    Client(sm).do(Op.OP_PUT, b"k", b"v")
    stream = bytearray(b"".join(sm.snapshot_chunks()))
    stream[-10] ^= 0xFF
    other = machine()
    Client(other).do(Op.OP_PUT, b"mine", b"1")
    loader = other.snapshot_loader()
    with pytest.raises(SnapshotError):
        loader.feed(bytes(stream))
        other.restore(loader)
    assert other.scan() == [(b"mine", b"1")]
    with pytest.raises(SnapshotError):
        bad = other.snapshot_loader()
        bad.feed(b"NOPE" + bytes(20))


OPS = st.sampled_from(
    [Op.OP_PUT, Op.OP_APPEND, Op.OP_DELETE, Op.OP_PUT_IF_ABSENT, Op.OP_UPDATE, Op.OP_CAS]
)
KEYS = st.sampled_from([b"a", b"b", b"c"])
VALUES = st.binary(max_size=3)


def model_outcome(
    op: Op.ValueType, current: bytes | None, value: bytes, expected: bytes
) -> bytes | None:
    """The value a key holds after ``op`` in a plain dict model (None: absent)."""
    if op == Op.OP_PUT:
        return value
    if op == Op.OP_APPEND:
        return (current or b"") + value
    if op == Op.OP_DELETE:
        return None
    if op == Op.OP_PUT_IF_ABSENT:
        return value if current is None else current
    if op == Op.OP_UPDATE:
        return None if current is None else value
    assert op == Op.OP_CAS
    return value if current == expected else current


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(OPS, KEYS, VALUES, VALUES, st.booleans()), max_size=40))
def test_matches_a_dict_model(ops: list[tuple[Op.ValueType, bytes, bytes, bytes, bool]]) -> None:
    sm = machine()
    c = Client(sm)
    model: dict[bytes, bytes] = {}
    for op, key, value, expected, retry in ops:
        command = c.command(op, key, value, expected=expected)
        result = sm.apply(command.SerializeToString())
        assert result is not None
        new_value = model_outcome(op, model.get(key), value, expected)
        if new_value is None:
            model.pop(key, None)
        else:
            model[key] = new_value
        if retry:
            assert sm.apply(command.SerializeToString()) == result
        assert sm.scan() == sorted(model.items())
    assert restored_copy(sm, 5).scan() == sorted(model.items())
