"""Record framing for the write-ahead log: length, type and two CRCs around each payload.

Layout of one record (little-endian; docs/storage.md has the full table)::

    0   u32  payload length N
    4   u8   record type
    5   3    zero
    8   u32  CRC-32 of bytes 0..8   (the header check: a damaged length is caught before it is used)
    12  u32  CRC-32 of the payload
    16  N    payload

CRC-32 is zlib's (the IEEE polynomial), not CRC-32C: the standard library has no CRC-32C, and for
detecting torn and flipped bytes on a local disk the two are equally good.

Scanning tells a torn tail (what a crash in the middle of the last write leaves) from damage: a
record is torn only when it is incomplete at the end of the file, or fails its check with nothing
but zero bytes after its start, or fails its payload check while ending exactly at the end of the
file. Only the last segment may have a torn tail; anything else that fails a check is a
CorruptionError."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from kvserver.storage.errors import CorruptionError

__all__ = ["HEADER_SIZE", "Record", "RecordType", "ScanResult", "encode_record", "scan_records"]

_HEADER = struct.Struct("<IB3xII")
HEADER_SIZE = _HEADER.size
_CHECKED = 8  # the header check covers length, type and padding


class RecordType(IntEnum):
    """What a record's payload holds."""

    SEGMENT_HEADER = 1
    ENTRY = 2
    HARD_STATE = 3


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record and the byte offset where it starts in its file."""

    type: int
    payload: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The good records of a file, where they end, and why the rest (if any) was torn."""

    records: list[Record]
    valid_end: int
    torn_reason: str | None


def encode_record(record_type: RecordType, payload: bytes) -> bytes:
    """The framed bytes of one record."""
    head = struct.pack("<IB3x", len(payload), record_type)
    return head + struct.pack("<II", zlib.crc32(head), zlib.crc32(payload)) + payload


def scan_records(data: bytes, path: str, *, tail_may_be_torn: bool) -> ScanResult:
    """Decode every record of ``data`` (the content of ``path``).

    With ``tail_may_be_torn``, a torn last record ends the scan (``valid_end`` is where it starts,
    ``torn_reason`` says what was wrong); otherwise, and for any damage a crash cannot explain,
    raises :class:`CorruptionError` naming ``path`` and the offset.
    """
    records: list[Record] = []
    pos = 0
    size = len(data)
    while pos < size:
        problem, incomplete = _check_record(data, pos)
        if problem is None:
            length = _HEADER.unpack_from(data, pos)[0]
            end = pos + HEADER_SIZE + length
            record_type = data[pos + 4]
            records.append(Record(record_type, data[pos + HEADER_SIZE : end], pos))
            pos = end
            continue
        torn = incomplete or not any(data[pos:])
        if tail_may_be_torn and torn:
            return ScanResult(records, pos, problem)
        if torn:
            problem += " (it looks torn, but only the end of the newest segment may be)"
        raise CorruptionError(path, pos, problem)
    return ScanResult(records, pos, None)


def _check_record(data: bytes, pos: int) -> tuple[str | None, bool]:
    """(what is wrong with the record at ``pos`` or None, whether the file end cuts it short)."""
    size = len(data)
    if size - pos < HEADER_SIZE:
        return f"partial record header ({size - pos} of {HEADER_SIZE} bytes)", True
    length, _, header_crc, payload_crc = _HEADER.unpack_from(data, pos)
    if zlib.crc32(data[pos : pos + _CHECKED]) != header_crc:
        return "record header checksum mismatch", False
    end = pos + HEADER_SIZE + length
    if end > size:
        return f"record of {length} bytes runs past the end of the file", True
    if zlib.crc32(data[pos + HEADER_SIZE : end]) != payload_crc:
        return "record payload checksum mismatch", end == size
    return None, False
