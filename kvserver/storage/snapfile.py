"""Snapshot files: ``snap-<index, 20 digits>.snap``, written whole under a temporary name.

Layout (little-endian; docs/storage.md has the table)::

    0        8  magic b"RAFTKVSN"
    8        4  u32 format version (1)
    12       4  u32 M, length of the metadata
    16       M  SnapshotMetadata (protobuf: index, term, conf state)
    16+M     4  u32 CRC-32 of bytes 0 .. 16+M
    20+M     D  the snapshot data
    20+M+D   8  u64 D
    28+M+D   4  u32 CRC-32 of the data
    32+M+D   4  u32 CRC-32 of the 12 bytes before

The header is written before the data is known, the data's length and checksum after it, so a
snapshot streams to disk in chunks. A snapshot file is synced before it is renamed into place, so a
crash never leaves a short one: any failed check is damage (CorruptionError).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from dataclasses import dataclass

from kvserver.storage.errors import CorruptionError
from kvserver.storage.fs import FileHandle, FileSystem
from raftcore.raftpb_pb2 import SnapshotMetadata

__all__ = ["SnapshotFile", "SnapshotFileWriter", "parse_snapshot_name", "snapshot_name"]

_MAGIC = b"RAFTKVSN"
_VERSION = 1
_HEAD = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
_TRAILER = struct.Struct("<QII")
_NAME = re.compile(r"^snap-(\d{20})\.snap$")
_VERIFY_CHUNK = 1 << 20


def snapshot_name(index: int) -> str:
    """File name of the snapshot at ``index``."""
    return f"snap-{index:020d}.snap"


def parse_snapshot_name(name: str) -> int | None:
    """The index in a snapshot file name, or None if ``name`` is not a snapshot."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """A verified snapshot file: its metadata and where its data lies."""

    path: str
    metadata: SnapshotMetadata
    data_offset: int
    data_size: int

    @classmethod
    def open(cls, fs: FileSystem, path: str) -> SnapshotFile:
        """Read and verify every checksum of ``path``; raise CorruptionError naming the offset."""
        size = fs.size(path)
        head = fs.read_at(path, 0, _HEAD.size)
        if len(head) < _HEAD.size:
            raise CorruptionError(path, 0, f"snapshot file of {size} bytes is too short")
        magic, version, meta_len = _HEAD.unpack(head)
        if magic != _MAGIC:
            raise CorruptionError(path, 0, f"bad snapshot magic {magic!r}")
        if version != _VERSION:
            raise CorruptionError(path, 8, f"unsupported snapshot format version {version}")
        data_offset = _HEAD.size + meta_len + _CRC.size
        if data_offset + _TRAILER.size > size:
            raise CorruptionError(path, 12, "metadata length runs past the end of the file")
        meta_bytes = fs.read_at(path, _HEAD.size, meta_len)
        (header_crc,) = _CRC.unpack(fs.read_at(path, _HEAD.size + meta_len, _CRC.size))
        if zlib.crc32(meta_bytes, zlib.crc32(head)) != header_crc:
            raise CorruptionError(path, 0, "snapshot header checksum mismatch")
        trailer_at = size - _TRAILER.size
        data_size, data_crc, trailer_crc = _TRAILER.unpack(fs.read_at(path, trailer_at, 16))
        if zlib.crc32(fs.read_at(path, trailer_at, 12)) != trailer_crc:
            raise CorruptionError(path, trailer_at, "snapshot trailer checksum mismatch")
        if data_offset + data_size != trailer_at:
            raise CorruptionError(
                path, trailer_at, f"trailer says {data_size} data bytes, the file size disagrees"
            )
        crc = 0
        for start in range(data_offset, trailer_at, _VERIFY_CHUNK):
            crc = zlib.crc32(fs.read_at(path, start, min(_VERIFY_CHUNK, trailer_at - start)), crc)
        if crc != data_crc:
            raise CorruptionError(path, data_offset, "snapshot data checksum mismatch")
        metadata = SnapshotMetadata()
        try:
            metadata.ParseFromString(meta_bytes)
        except Exception as exc:  # protobuf's DecodeError
            raise CorruptionError(path, _HEAD.size, f"undecodable metadata: {exc}") from exc
        return cls(path, metadata, data_offset, data_size)

    def read(self, fs: FileSystem, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of the data from ``offset``."""
        offset = max(0, offset)
        length = max(0, min(length, self.data_size - offset))
        return fs.read_at(self.path, self.data_offset + offset, length) if length else b""


class SnapshotFileWriter:
    """Streams one snapshot into ``tmp_path``; after :meth:`finish` the caller renames it.

    Methods raise OSError on failure; the caller then calls :meth:`discard`.
    """

    def __init__(
        self, fs: FileSystem, directory: str, tmp_name: str, metadata: SnapshotMetadata
    ) -> None:
        self._fs = fs
        self._directory = directory
        self.tmp_path = os.path.join(directory, tmp_name)
        self.final_path = os.path.join(directory, snapshot_name(metadata.index))
        self._crc = 0
        self._size = 0
        self.broken = False
        self._handle: FileHandle | None = fs.create(self.tmp_path)
        self._metadata = SnapshotMetadata()
        self._metadata.CopyFrom(metadata)
        meta = metadata.SerializeToString()
        self._data_offset = _HEAD.size + len(meta) + _CRC.size
        head = _HEAD.pack(_MAGIC, _VERSION, len(meta)) + meta
        self._handle.write(head + _CRC.pack(zlib.crc32(head)))

    def write(self, data: bytes) -> None:
        """Append ``data`` to the snapshot's data. A failed write cuts off what it wrote in part,
        so the same data can be written again; if even that fails, ``broken`` is set and the
        file is unusable (discard it)."""
        assert self._handle is not None, "snapshot file already finished"
        try:
            self._handle.write(data)
        except OSError:
            try:
                self._handle.truncate(self._data_offset + self._size)
            except OSError:
                self.broken = True
            raise
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)

    def finish(self, *, sync: bool) -> SnapshotFile:
        """Write the trailer, sync and close; the caller renames it to ``final_path``."""
        assert self._handle is not None, "snapshot file already finished"
        trailer = struct.pack("<QI", self._size, self._crc)
        self._handle.write(trailer + _CRC.pack(zlib.crc32(trailer)))
        if sync:
            self._handle.sync()
        self._close()
        return SnapshotFile(self.final_path, self._metadata, self._data_offset, self._size)

    def discard(self) -> None:
        """Close and remove the temporary file (best effort: recovery removes leftovers)."""
        self._close()
        with contextlib.suppress(OSError):
            self._fs.unlink(self.tmp_path)

    def _close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()
