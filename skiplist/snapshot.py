"""Dump a bytes -> bytes ``SkipList`` to a binary snapshot and load it back, streaming.

The format (version 2; every integer big-endian; full description in docs/skiplist-format.md)::

    header   magic b"RKSL" | version u16 = 2 | flags u16 = 0 | count u64
    blocks   until count records:
             n u32 (>= 1) | body_len u64 | key_len u32 * n | value_len u32 * n | keys | values
    trailer  magic b"RKSE" | crc32 u32 of every byte of header and blocks

Lengths prefix the bytes, so keys and values may hold any bytes (empty ones, NULs, newlines).
The original C++ skip list wrote ``key:value`` lines and read keys back as values; this format
has no delimiter to collide with.

Why blocks (version 1 interleaved ``key_len | key | value_len | value`` per record): a block's
lengths are one array, so ``struct`` decodes all of them in one call, ``itertools.accumulate``
turns them into offsets and ``map(slice, ...)`` cuts every key and value, all in C; a dump
likewise joins a block's keys and values with one ``bytes.join`` each. No Python bytecode runs
per record, which makes loading and dumping a million keys several times faster. The loader
still reads version 1.

Dumping is a generator of chunks of about ``chunk_size`` bytes, so a snapshot of millions of
keys never sits in memory twice. Loading is incremental: ``SnapshotLoader.feed`` accepts chunks
split anywhere, parses every complete block, and hands its keys and values to a
``SkipListBuilder``, which links them in one linear pass (the records are sorted, so no
searches). ``finish`` checks the trailer and returns the map. Any defect raises a
``SnapshotError`` subclass and no map is returned, so a caller that loads into a fresh map and
swaps it in on success loses nothing.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterable, Iterator
from itertools import accumulate, islice

from skiplist.skiplist import SkipList, SkipListBuilder

__all__ = [
    "FORMAT_VERSION",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotLoader",
    "SnapshotTruncatedError",
    "dump_chunks",
    "dumps",
    "load_chunks",
    "loads",
]

MAGIC = b"RKSL"
TRAILER_MAGIC = b"RKSE"
#: The version ``dump_chunks`` writes; the loader reads it and version 1.
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
DEFAULT_CHUNK_SIZE = 1 << 18
#: Records per block: large enough that per-block Python work is noise, small enough that a
#: block of ordinary records is a few hundred KiB for the loader to hold whole.
BLOCK_RECORDS = 2048

_HEADER = struct.Struct(">4sHHQ")
_TRAILER = struct.Struct(">4sI")
_BLOCK = struct.Struct(">IQ")
_LENGTH = struct.Struct(">I")
_MAX_LENGTH = (1 << 32) - 1


class SnapshotError(ValueError):
    """The bytes given to the loader are not a valid skip-list snapshot."""


class SnapshotTruncatedError(SnapshotError):
    """The input ended before the snapshot did."""


class SnapshotCorruptError(SnapshotError):
    """The input is damaged or not a snapshot: bad magic, unknown version or flags, a failed
    checksum, keys out of order, or bytes after the trailer."""


def dump_chunks(
    skiplist: SkipList[bytes, bytes], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[bytes]:
    """Yield the snapshot of ``skiplist`` as chunks of about ``chunk_size`` bytes (a chunk
    holds whole blocks, so one may be larger).

    The map must not change while the generator runs: inserting or deleting a key raises
    ``RuntimeError``; overwriting a value mid-dump gives a snapshot that mixes old and new
    values. Keys and values must be bytes (``TypeError`` otherwise); a key or value of 4 GiB or
    more raises ``ValueError``.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(skiplist))
    crc = 0
    parts: list[bytes] = [header]
    size = len(header)
    for keys, values in skiplist.batches(BLOCK_RECORDS):
        n = len(keys)
        lengths = [*map(len, keys), *map(len, values)]
        if max(lengths) > _MAX_LENGTH:
            raise ValueError("a key or value of 4 GiB or more does not fit the snapshot format")
        body_len = 8 * n + sum(lengths)
        parts += (
            _BLOCK.pack(n, body_len),
            struct.pack(f">{2 * n}I", *lengths),
            b"".join(keys),
            b"".join(values),
        )
        size += _BLOCK.size + body_len
        if size >= chunk_size:
            chunk = b"".join(parts)
            crc = zlib.crc32(chunk, crc)
            yield chunk
            parts = []
            size = 0
    chunk = b"".join(parts)
    crc = zlib.crc32(chunk, crc)
    yield chunk + _TRAILER.pack(TRAILER_MAGIC, crc)


def dumps(skiplist: SkipList[bytes, bytes]) -> bytes:
    """The whole snapshot of ``skiplist`` as one bytes object (for small maps and tests)."""
    return b"".join(dump_chunks(skiplist))


class SnapshotLoader:
    """Parses a snapshot fed in chunks of any size and builds the ``SkipList`` it holds.

    Call ``feed`` with each chunk in order, then ``finish``. Errors in the framing (bad
    header or block, bytes after the trailer) are raised by ``feed``; a failed checksum, keys
    out of order or a short input by ``finish`` at the latest. After an error every further
    call raises ``SnapshotCorruptError`` too. Chunks are only joined once enough bytes for the
    next block have arrived, so a block much larger than the chunks costs one copy, not one per
    chunk.

    ``feed`` only cuts the keys and values out of the input; ``finish`` links them all in one
    ``SkipListBuilder.extend_sorted`` call. One call means one pause of the garbage collector
    for the whole map: linking block by block would let a collection run between blocks and
    rescan the nodes linked so far, which costs more than the linking (quadratic-looking
    growth that the collector's own thresholds only bound to a few full passes).
    """

    __slots__ = (
        "_count",
        "_crc",
        "_dead",
        "_done",
        "_keys",
        "_need",
        "_pending",
        "_pending_size",
        "_remaining",
        "_rng",
        "_values",
        "_version",
    )

    def __init__(self, rng: random.Random | None = None) -> None:
        """Start a load; ``rng`` draws the tower heights, as for ``SkipList``."""
        self._rng = rng
        self._pending: list[bytes] = []  # unparsed bytes, in order
        self._pending_size = 0
        self._need = _HEADER.size  # bytes that must be pending before parsing can progress
        self._keys: list[bytes] = []  # every record parsed so far, linked by finish()
        self._values: list[bytes] = []
        self._count = 0
        self._remaining = -1  # records still expected; -1 until the header is read
        self._version = 0  # set with the header
        self._crc = 0
        self._done = False  # the trailer has been read
        self._dead = False  # a call raised: the parse position is lost

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk of the snapshot."""
        self._check_alive()
        try:
            self._feed(bytes(data))
        except SnapshotError:
            self._dead = True
            raise

    def _check_alive(self) -> None:
        if self._dead:
            raise SnapshotCorruptError("this loader already rejected its input")

    def _feed(self, data: bytes) -> None:
        if self._done:
            if data:
                raise SnapshotCorruptError("bytes after the snapshot trailer")
            return
        if not data:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size < self._need:
            return
        buffer = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        pos = 0
        if self._remaining < 0:
            pos = self._read_header(buffer)
        if self._remaining:
            pos = self._read_records(buffer, pos)
        self._crc = zlib.crc32(memoryview(buffer)[:pos], self._crc)
        if not self._remaining:
            if len(buffer) - pos >= _TRAILER.size:
                self._read_trailer(buffer, pos)
                return
            self._need = _TRAILER.size
        rest = buffer[pos:]
        self._pending = [rest] if rest else []
        self._pending_size = len(rest)

    def finish(self) -> SkipList[bytes, bytes]:
        """The loaded map; raises ``SnapshotTruncatedError`` if the input stopped short and
        ``SnapshotCorruptError`` if its keys are not strictly ascending."""
        self._check_alive()
        if not self._done:
            if self._remaining < 0:
                raise SnapshotTruncatedError(
                    f"snapshot ended inside its header ({self._pending_size} of "
                    f"{_HEADER.size} bytes)"
                )
            if self._remaining:
                done = self._count - self._remaining
                raise SnapshotTruncatedError(
                    f"snapshot ended inside record {done} of {self._count} "
                    f"({self._pending_size} of its {self._need} bytes present)"
                )
            raise SnapshotTruncatedError("snapshot ended before its trailer")
        builder: SkipListBuilder[bytes, bytes] = SkipListBuilder(self._rng)
        keys, values = self._keys, self._values
        self._keys, self._values = [], []
        try:
            builder.extend_sorted(keys, values)
        except ValueError as exc:
            self._dead = True
            raise SnapshotCorruptError(f"records out of order: {exc}") from None
        return builder.build()

    def _read_header(self, buffer: bytes) -> int:
        magic, version, flags, count = _HEADER.unpack_from(buffer, 0)
        if magic != MAGIC:
            raise SnapshotCorruptError(f"not a skip-list snapshot: magic {magic!r}")
        if version not in _READABLE_VERSIONS:
            raise SnapshotCorruptError(f"unsupported snapshot version {version}")
        if flags:
            raise SnapshotCorruptError(f"unknown snapshot flags {flags:#06x}")
        self._count = self._remaining = count
        self._version = version
        return _HEADER.size

    def _read_records(self, buffer: bytes, pos: int) -> int:
        """Parse whole records from ``buffer[pos:]`` into the builder; returns where the first
        incomplete block or record (or the trailer) starts and sets ``_need`` to its size, as
        far as it is known."""
        if self._version == 1:
            keys, values, pos = self._parse_records_v1(buffer, pos)
        else:
            keys, values, pos = self._parse_blocks(buffer, pos)
        self._keys += keys
        self._values += values
        self._remaining -= len(keys)
        return pos

    def _parse_blocks(self, buffer: bytes, pos: int) -> tuple[list[bytes], list[bytes], int]:
        """Version 2: every complete block from ``pos``, cut with C-level loops only."""
        end = len(buffer)
        remaining = self._remaining
        keys: list[bytes] = []
        values: list[bytes] = []
        need = 0
        while remaining:
            body = pos + _BLOCK.size
            if body > end:
                need = _BLOCK.size
                break
            n, body_len = _BLOCK.unpack_from(buffer, pos)
            if not 0 < n <= remaining or 8 * n > body_len:
                raise SnapshotCorruptError(
                    f"bad block of {n} records in {body_len} bytes ({remaining} records left)"
                )
            if body + body_len > end:
                need = _BLOCK.size + body_len
                break
            lengths = struct.unpack_from(f">{2 * n}I", buffer, body)
            key_lengths, value_lengths = lengths[:n], lengths[n:]
            keys_at = body + 8 * n
            values_at = keys_at + sum(key_lengths)
            if values_at + sum(value_lengths) != body + body_len:
                raise SnapshotCorruptError(
                    f"a block's lengths add up to {8 * n + sum(lengths)} bytes, "
                    f"its header says {body_len}"
                )
            keys += _cut(buffer, keys_at, key_lengths)
            values += _cut(buffer, values_at, value_lengths)
            remaining -= n
            pos = body + body_len
        self._need = need
        return keys, values, pos

    def _parse_records_v1(self, buffer: bytes, pos: int) -> tuple[list[bytes], list[bytes], int]:
        """Version 1: every complete ``key_len | key | value_len | value`` record from ``pos``."""
        unpack = _LENGTH.unpack_from
        end = len(buffer)
        remaining = self._remaining
        keys: list[bytes] = []
        values: list[bytes] = []
        need = 0
        while remaining:
            key_start = pos + 4
            if key_start > end:
                need = 4
                break
            key_end = key_start + unpack(buffer, pos)[0]
            value_start = key_end + 4
            if value_start > end:
                need = value_start - pos
                break
            value_end = value_start + unpack(buffer, key_end)[0]
            if value_end > end:
                need = value_end - pos
                break
            keys.append(buffer[key_start:key_end])
            values.append(buffer[value_start:value_end])
            pos = value_end
            remaining -= 1
        self._need = need
        return keys, values, pos

    def _read_trailer(self, buffer: bytes, pos: int) -> None:
        magic, crc = _TRAILER.unpack_from(buffer, pos)
        if magic != TRAILER_MAGIC:
            raise SnapshotCorruptError(f"bad trailer magic {magic!r} after the last record")
        if crc != self._crc:
            raise SnapshotCorruptError(
                f"checksum mismatch: trailer says {crc:#010x}, data gives {self._crc:#010x}"
            )
        if len(buffer) > pos + _TRAILER.size:
            raise SnapshotCorruptError("bytes after the snapshot trailer")
        self._done = True
        self._pending = []
        self._pending_size = 0


def _cut(buffer: bytes, start: int, lengths: tuple[int, ...]) -> list[bytes] | tuple[bytes, ...]:
    """The byte strings of ``lengths`` laid end to end in ``buffer`` from ``start``.

    When they all have one length (fixed-size keys or values, the common case) a single
    ``struct`` format ``"<L>s" * n``, compiled once and cached by ``struct``, cuts them all in
    one call, about ten times faster than a slice object and a ``__getitem__`` per string.
    """
    n = len(lengths)
    if lengths.count(lengths[0]) == n:
        return struct.unpack_from(f"{lengths[0]}s" * n, buffer, start)
    offsets = list(accumulate(lengths, initial=start))
    return list(map(buffer.__getitem__, map(slice, offsets, islice(offsets, 1, None))))


def load_chunks(
    chunks: Iterable[bytes | bytearray | memoryview], rng: random.Random | None = None
) -> SkipList[bytes, bytes]:
    """Load a snapshot from an iterable of chunks, e.g. ``iter(lambda: f.read(1 << 18), b"")``."""
    loader = SnapshotLoader(rng)
    for chunk in chunks:
        loader.feed(chunk)
    return loader.finish()


def loads(
    data: bytes | bytearray | memoryview, rng: random.Random | None = None
) -> SkipList[bytes, bytes]:
    """Load a snapshot held in one bytes-like object."""
    return load_chunks((data,), rng)
