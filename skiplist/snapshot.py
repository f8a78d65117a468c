"""Dump a bytes -> bytes ``SkipList`` to a binary snapshot and load it back, streaming.

The format (version 1; every integer big-endian; full description in docs/skiplist-format.md)::

    header   magic b"RKSL" | version u16 = 1 | flags u16 = 0 | count u64
    records  count times:  key_len u32 | key | value_len u32 | value     (keys strictly ascending)
    trailer  magic b"RKSE" | crc32 u32 of every byte of header and records

Lengths prefix the bytes, so keys and values may hold any bytes (empty ones, NULs, newlines).
The original C++ skip list wrote ``key:value`` lines and read keys back as values; this format
has no delimiter to collide with.

Dumping is a generator of chunks of about ``chunk_size`` bytes, so a snapshot of millions of
keys never sits in memory twice. Loading is incremental: ``SnapshotLoader.feed`` accepts chunks
split anywhere, parses every complete record, and hands them to a ``SkipListBuilder``, which
links them in one linear pass (the records are sorted, so no searches). ``finish`` checks the
trailer and returns the map. Any defect raises a ``SnapshotError`` subclass and no map is
returned, so a caller that loads into a fresh map and swaps it in on success loses nothing.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterable, Iterator

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
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 18

_HEADER = struct.Struct(">4sHHQ")
_TRAILER = struct.Struct(">4sI")
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
    """Yield the snapshot of ``skiplist`` as chunks of about ``chunk_size`` bytes.

    The map must not change while the generator runs: inserting or deleting a key raises
    ``RuntimeError``; overwriting a value mid-dump gives a snapshot that mixes old and new
    values. Keys and values must be bytes; a key or value of 4 GiB or more raises ``ValueError``.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(skiplist))
    crc = 0
    parts: list[bytes] = [header]
    size = len(header)
    pack = _LENGTH.pack
    for key, value in skiplist.items():
        key_len = len(key)
        value_len = len(value)
        if key_len > _MAX_LENGTH or value_len > _MAX_LENGTH:
            raise ValueError("a key or value of 4 GiB or more does not fit the snapshot format")
        parts += (pack(key_len), key, pack(value_len), value)
        size += key_len + value_len + 8
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

    Call ``feed`` with each chunk in order, then ``finish``. Errors detectable early (bad
    header, keys out of order, bytes after the trailer) are raised by ``feed``; a failed
    checksum or a short input is raised by ``finish`` at the latest. After an error every
    further call raises ``SnapshotCorruptError`` too. Chunks are only joined once enough bytes
    for the next record have arrived, so a record much larger than the chunks costs one copy,
    not one per chunk.
    """

    __slots__ = (
        "_builder",
        "_count",
        "_crc",
        "_dead",
        "_done",
        "_need",
        "_pending",
        "_pending_size",
        "_remaining",
        "_rng",
    )

    def __init__(self, rng: random.Random | None = None) -> None:
        """Start a load; ``rng`` draws the tower heights, as for ``SkipList``."""
        self._rng = rng
        self._pending: list[bytes] = []  # unparsed bytes, in order
        self._pending_size = 0
        self._need = _HEADER.size  # bytes that must be pending before parsing can progress
        self._builder: SkipListBuilder[bytes, bytes] | None = None
        self._count = 0
        self._remaining = -1  # records still expected; -1 until the header is read
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
        """The loaded map; raises ``SnapshotTruncatedError`` if the input stopped short."""
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
        assert self._builder is not None  # set with the header
        return self._builder.build()

    def _read_header(self, buffer: bytes) -> int:
        magic, version, flags, count = _HEADER.unpack_from(buffer, 0)
        if magic != MAGIC:
            raise SnapshotCorruptError(f"not a skip-list snapshot: magic {magic!r}")
        if version != FORMAT_VERSION:
            raise SnapshotCorruptError(f"unsupported snapshot version {version}")
        if flags:
            raise SnapshotCorruptError(f"unknown snapshot flags {flags:#06x}")
        self._count = self._remaining = count
        self._builder = SkipListBuilder(self._rng)
        return _HEADER.size

    def _read_records(self, buffer: bytes, pos: int) -> int:
        """Parse whole records from ``buffer[pos:]`` into the builder; returns where the first
        incomplete record (or the trailer) starts and sets ``_need`` to that record's size,
        as far as it is known."""
        unpack = _LENGTH.unpack_from
        end = len(buffer)
        remaining = self._remaining
        records: list[tuple[bytes, bytes]] = []
        append = records.append
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
            append((buffer[key_start:key_end], buffer[value_start:value_end]))
            pos = value_end
            remaining -= 1
        assert self._builder is not None  # set with the header
        try:
            self._builder.extend(records)
        except ValueError as exc:
            raise SnapshotCorruptError(f"records out of order: {exc}") from None
        self._remaining = remaining
        self._need = need
        return pos

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
