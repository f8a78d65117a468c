"""Write-ahead-log segment files: their names, their header record, and durable creation.

A segment is ``wal-<seq, 16 decimal digits>.log``: a SEGMENT_HEADER record, then ENTRY and
HARD_STATE records in the order they were saved. Sequence numbers are consecutive. A *rebase*
segment starts the log afresh on top of a snapshot (its header carries that snapshot's metadata, and
it holds the hard state and the entries kept after the snapshot); a *continuation* segment just
carries on from the previous one when it grew past the size limit. Recovery replays from the newest
rebase segment.

Segments are always born complete: written under a temporary name, synced, renamed, and the
directory synced. So a segment's header is never torn, and a missing segment is damage, not a crash.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from kvserver.storage.errors import CorruptionError, StorageIOError
from kvserver.storage.fs import FileSystem
from kvserver.storage.records import Record, RecordType, encode_record
from raftcore.raftpb_pb2 import Entry, HardState, SnapshotMetadata

__all__ = [
    "SegmentHeader",
    "SegmentKind",
    "batch_records",
    "decode_segment_header",
    "parse_segment_name",
    "rebase_segment",
    "segment_name",
    "write_new_file",
]

_MAGIC = b"RAFTKVWL"
_VERSION = 1
_FIXED = struct.Struct("<8sIB3xQ")
_NAME = re.compile(r"^wal-(\d{16})\.log$")
TMP_SUFFIX = ".tmp"


class SegmentKind(IntEnum):
    """Whether a segment starts the log afresh on a snapshot or continues the previous segment."""

    REBASE = 1
    CONTINUATION = 2


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """A segment's first record: its kind, sequence number, and the snapshot its log builds on."""

    kind: SegmentKind
    seq: int
    base: SnapshotMetadata

    def encode(self) -> bytes:
        """The framed SEGMENT_HEADER record."""
        fixed = _FIXED.pack(_MAGIC, _VERSION, self.kind, self.seq)
        return encode_record(RecordType.SEGMENT_HEADER, fixed + self.base.SerializeToString())


def segment_name(seq: int) -> str:
    """File name of segment ``seq``."""
    return f"wal-{seq:016d}.log"


def parse_segment_name(name: str) -> int | None:
    """The sequence number in a segment file name, or None if ``name`` is not a segment."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


def batch_records(entries: Sequence[Entry], hard_state: HardState | None) -> bytes:
    """The records of one saved batch: its entries, then its hard state (if any)."""
    parts = [encode_record(RecordType.ENTRY, entry.SerializeToString()) for entry in entries]
    if hard_state is not None:
        parts.append(encode_record(RecordType.HARD_STATE, hard_state.SerializeToString()))
    return b"".join(parts)


def rebase_segment(
    seq: int, base: SnapshotMetadata, hard_state: HardState, entries: Sequence[Entry]
) -> bytes:
    """The whole content of a rebase segment: header, the kept entries, the hard state."""
    header = SegmentHeader(SegmentKind.REBASE, seq, base).encode()
    return header + batch_records(entries, hard_state)


def decode_segment_header(record: Record, path: str, expected_seq: int) -> SegmentHeader:
    """Check and decode the first record of segment ``path``; CorruptionError if it is wrong."""
    if record.type != RecordType.SEGMENT_HEADER or len(record.payload) < _FIXED.size:
        raise CorruptionError(path, record.offset, "the file does not start with a segment header")
    magic, version, kind, seq = _FIXED.unpack_from(record.payload)
    if magic != _MAGIC:
        raise CorruptionError(path, record.offset, f"bad segment magic {magic!r}")
    if version != _VERSION:
        raise CorruptionError(path, record.offset, f"unsupported segment format version {version}")
    if kind not in (SegmentKind.REBASE, SegmentKind.CONTINUATION):
        raise CorruptionError(path, record.offset, f"unknown segment kind {kind}")
    if seq != expected_seq:
        raise CorruptionError(
            path, record.offset, f"header says segment {seq}, name says otherwise"
        )
    base = SnapshotMetadata()
    try:
        base.ParseFromString(record.payload[_FIXED.size :])
    except Exception as exc:  # protobuf raises DecodeError, a bare Exception subclass
        raise CorruptionError(path, record.offset, f"undecodable segment base: {exc}") from exc
    return SegmentHeader(SegmentKind(kind), seq, base)


def write_new_file(
    fs: FileSystem, directory: str, name: str, content: bytes, *, sync: bool
) -> None:
    """Durably create ``directory/name`` holding ``content``: temp file, sync, rename, sync dir.

    On an OSError the new file is removed again and the error propagates: ``name`` does not exist,
    durably. If even that cleanup fails, raises StorageIOError: whether ``name`` survives a crash is
    then unknown, and the caller must stop writing.
    """
    final = os.path.join(directory, name)
    tmp = final + TMP_SUFFIX
    renamed = False
    try:
        handle = fs.create(tmp)
        try:
            handle.write(content)
            if sync:
                handle.sync()
        finally:
            handle.close()
        fs.rename(tmp, final)
        renamed = True
        if sync:
            fs.sync_dir(directory)
    except OSError as exc:
        try:
            fs.unlink(final if renamed else tmp)
            if renamed and sync:
                fs.sync_dir(directory)
        except OSError as cleanup_exc:
            if renamed:
                raise StorageIOError(
                    f"creating {final} failed ({exc}) and removing it failed too ({cleanup_exc}); "
                    "whether it survives a crash is unknown: close and reopen the storage",
                    cleanup_exc.errno,
                ) from exc
            # A leftover temporary file is harmless: recovery removes it.
        raise
