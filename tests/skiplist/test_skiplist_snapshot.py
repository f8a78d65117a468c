"""Snapshot dump/load: round trips of arbitrary bytes, any chunking, and rejection of bad input."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skiplist import (
    FORMAT_VERSION,
    SkipList,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotLoader,
    SnapshotTruncatedError,
    dump_chunks,
    dumps,
    load_chunks,
    loads,
)
from skiplist.snapshot import BLOCK_RECORDS
from tests.skiplist.skiplist_testkit import check_structure

MAPS = st.dictionaries(st.binary(max_size=40), st.binary(max_size=40), max_size=40)


def build(items: dict[bytes, bytes]) -> SkipList[bytes, bytes]:
    sl: SkipList[bytes, bytes] = SkipList(random.Random(7))
    for key, value in items.items():
        sl[key] = value
    return sl


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, sorted)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def snapshot(records: list[tuple[bytes, bytes]], *, version: int = 1, flags: int = 0) -> bytes:
    """A version-1 snapshot assembled by hand from the format description, checksum included
    (``version`` only changes the number in the header)."""
    body = struct.pack(">4sHHQ", b"RKSL", version, flags, len(records))
    for key, value in records:
        body += struct.pack(">I", len(key)) + key + struct.pack(">I", len(value)) + value
    return body + struct.pack(">4sI", b"RKSE", zlib.crc32(body))


def snapshot_v2(records: list[tuple[bytes, bytes]], block_records: int = BLOCK_RECORDS) -> bytes:
    """A version-2 snapshot assembled by hand from the format description: blocks of
    ``block_records`` records, checksum included."""
    body = struct.pack(">4sHHQ", b"RKSL", 2, 0, len(records))
    for start in range(0, len(records), block_records):
        block = records[start : start + block_records]
        lengths = [len(k) for k, _ in block] + [len(v) for _, v in block]
        body += struct.pack(">IQ", len(block), 8 * len(block) + sum(lengths))
        body += b"".join(struct.pack(">I", n) for n in lengths)
        body += b"".join(k for k, _ in block) + b"".join(v for _, v in block)
    return body + struct.pack(">4sI", b"RKSE", zlib.crc32(body))


@settings(max_examples=150, deadline=None)
@given(items=MAPS, chunk_size=st.integers(1, 64), cuts=st.lists(st.integers(0, 10_000)))
def test_round_trip_any_bytes_any_chunking(
    items: dict[bytes, bytes], chunk_size: int, cuts: list[int]
) -> None:
    original = build(items)
    data = b"".join(dump_chunks(original, chunk_size))
    assert data == dumps(original)
    loaded = load_chunks(split(data, cuts), random.Random(1))
    assert list(loaded.items()) == sorted(items.items())
    check_structure(loaded)
    # The loaded map is a normal map: it takes inserts and deletes afterwards.
    loaded[b"\xff" * 41] = b"new"
    for key in list(items)[::2]:
        del loaded[key]
    check_structure(loaded)


def test_format_matches_the_documented_layout() -> None:
    assert FORMAT_VERSION == 2
    items = {b"": b"empty key", b"a\x00b": b"", b"\n:": b"\xff" * 3}
    assert dumps(build(items)) == snapshot_v2(sorted(items.items()))


def test_a_large_map_is_cut_into_blocks_of_the_documented_size() -> None:
    items = {b"%05d" % i: b"v" * (i % 7) for i in range(2 * BLOCK_RECORDS + 5)}
    data = b"".join(dump_chunks(build(items), chunk_size=100))
    assert data == snapshot_v2(sorted(items.items()))
    assert list(loads(data).items()) == sorted(items.items())


def test_empty_map_round_trips() -> None:
    data = dumps(SkipList())
    assert data == snapshot_v2([])
    assert len(loads(data)) == 0


@settings(max_examples=50, deadline=None)
@given(items=MAPS, cuts=st.lists(st.integers(0, 10_000)))
def test_version_1_snapshots_still_load(items: dict[bytes, bytes], cuts: list[int]) -> None:
    data = snapshot(sorted(items.items()))
    loaded = load_chunks(split(data, cuts))
    assert list(loaded.items()) == sorted(items.items())
    check_structure(loaded)


def test_large_value_fed_in_small_chunks() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    data = dumps(build({b"k": value, b"l": b"x"}))
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    loaded = load_chunks(chunks)
    assert loaded[b"k"] == value
    assert loaded[b"l"] == b"x"


def test_every_proper_prefix_is_truncated() -> None:
    data = dumps(build({b"key%d" % i: b"v" * i for i in range(5)}))
    for end in range(len(data)):
        with pytest.raises(SnapshotTruncatedError):
            loads(data[:end])


def test_every_single_byte_change_is_rejected() -> None:
    data = dumps(build({b"key%d" % i: b"v" * i for i in range(5)}))
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x41
        with pytest.raises(SnapshotError):
            loads(bytes(damaged))


def _with_block_header(n: int, body_len: int) -> bytes:
    """A version-2 snapshot of two records (a block of 20 body bytes) whose block header says
    ``n`` records and ``body_len`` bytes instead, checksum recomputed."""
    good = snapshot_v2([(b"a", b"1"), (b"b", b"2")])[:-8]
    body = good[:16] + struct.pack(">IQ", n, body_len) + good[28:]
    return body + struct.pack(">4sI", b"RKSE", zlib.crc32(body))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XKSL" + snapshot([])[4:], "magic"),
        (snapshot([], version=3), "version"),
        (snapshot([], flags=1), "flags"),
        (snapshot([(b"b", b"1"), (b"a", b"2")]), "out of order"),
        (snapshot([(b"a", b"1"), (b"a", b"2")]), "out of order"),
        (snapshot([(b"a", b"1")])[:-4] + b"\x00\x00\x00\x00", "checksum"),
        (snapshot([(b"a", b"1")])[:-8] + b"XXXX" + snapshot([(b"a", b"1")])[-4:], "trailer"),
        (snapshot([(b"a", b"1")]) + b"\x00", "after the snapshot trailer"),
        (snapshot_v2([(b"b", b"1"), (b"a", b"2")]), "out of order"),
        (snapshot_v2([(b"a", b"1")])[:-4] + b"\x00\x00\x00\x00", "checksum"),
        (_with_block_header(2, 19), "lengths add up to 20 bytes, its header says 19"),
        (_with_block_header(0, 20), "bad block of 0 records"),
        (_with_block_header(3, 20), "bad block of 3 records"),
        (_with_block_header(2, 15), "bad block of 2 records in 15"),
    ],
)
def test_corrupt_input_names_the_defect(data: bytes, message: str) -> None:
    with pytest.raises(SnapshotCorruptError, match=message):
        loads(data)


def test_bytes_fed_after_the_trailer_are_rejected() -> None:
    loader = SnapshotLoader()
    loader.feed(snapshot([(b"a", b"1")]))
    with pytest.raises(SnapshotCorruptError, match="after the snapshot trailer"):
        loader.feed(b"\x00")


def test_truncation_message_says_where() -> None:
    data = snapshot([(b"a", b"1"), (b"b", b"2")])
    with pytest.raises(SnapshotTruncatedError, match="record 1 of 2"):
        loads(data[:-12])
    blocks = snapshot_v2([(b"a", b"1"), (b"b", b"2")], block_records=1)
    with pytest.raises(SnapshotTruncatedError, match="record 1 of 2"):
        loads(blocks[:-12])
    with pytest.raises(SnapshotTruncatedError, match="header"):
        loads(data[:5])
    with pytest.raises(SnapshotTruncatedError, match="trailer"):
        loads(data[:-3])


def test_snapshot_errors_are_value_errors() -> None:
    assert issubclass(SnapshotError, ValueError)
    assert issubclass(SnapshotTruncatedError, SnapshotError)
    assert issubclass(SnapshotCorruptError, SnapshotError)


def test_dump_refuses_a_map_that_changes_size_meanwhile() -> None:
    sl = build({b"%05d" % i: b"v" for i in range(2 * BLOCK_RECORDS + 5)})  # three blocks
    chunks = dump_chunks(sl, chunk_size=16)
    next(chunks)
    next(chunks)
    sl[b"new"] = b"v"
    with pytest.raises(RuntimeError, match="changed size"):
        list(chunks)


def test_dump_rejects_keys_that_are_not_bytes() -> None:
    sl: SkipList[str, bytes] = SkipList()
    sl["text"] = b"v"
    with pytest.raises(TypeError):
        dumps(sl)  # type: ignore[arg-type]


def test_dump_rejects_a_non_positive_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        list(dump_chunks(SkipList(), chunk_size=0))


def test_load_builds_the_ideal_shape_whatever_the_rng() -> None:
    data = dumps(build({b"%04d" % i: b"" for i in range(100)}))
    a = loads(data, random.Random(1))
    b = loads(data, random.Random(2))
    assert a.display(limit=100) == b.display(limit=100)
    assert a._height == 4  # 100 entries: levels 0..3 (every 4th, 16th, 64th entry)


def test_the_example_in_the_format_document() -> None:
    sl: SkipList[bytes, bytes] = SkipList()
    sl[b""] = b"x"
    sl[b"a\n"] = b""
    assert dumps(sl) == bytes.fromhex(
        "524b534c 0002 0000 0000000000000002"
        "00000002 0000000000000013"
        "00000000 00000002"
        "00000001 00000000"
        "610a"
        "78"
        "524b5345 1bfa3db9"
    )
    assert list(
        loads(
            bytes.fromhex(
                "524b534c 0001 0000 0000000000000002"
                "00000000 00000001 78"
                "00000002 610a 00000000"
                "524b5345 616eadfa"
            )
        ).items()
    ) == [(b"", b"x"), (b"a\n", b"")]


def test_a_loader_that_rejected_its_input_stays_failed() -> None:
    loader = SnapshotLoader()
    with pytest.raises(SnapshotCorruptError, match="magic"):
        loader.feed(b"XXXX" + snapshot([])[4:])
    with pytest.raises(SnapshotCorruptError, match="already rejected"):
        loader.feed(snapshot([]))
    with pytest.raises(SnapshotCorruptError, match="already rejected"):
        loader.finish()


def test_loader_accepts_memoryview_and_bytearray_chunks() -> None:
    data = dumps(build({b"k": b"v", b"l": b""}))
    loader = SnapshotLoader()
    loader.feed(memoryview(data)[:7])
    loader.feed(bytearray(data[7:20]))
    loader.feed(memoryview(data)[20:])
    assert list(loader.finish().items()) == [(b"k", b"v"), (b"l", b"")]


@pytest.mark.parametrize("value_size", [0, 1, 100])
def test_fixed_size_keys_and_values_round_trip(value_size: int) -> None:
    # Every key and every value of a block has one length: the loader's one-format fast path.
    items = {b"%016d" % i: bytes([i % 256]) * value_size for i in range(BLOCK_RECORDS + 3)}
    data = dumps(build(items))
    assert data == snapshot_v2(sorted(items.items()))
    assert list(loads(data).items()) == sorted(items.items())
