"""Durable storage for one raftkv node: a write-ahead log and snapshot files in a data directory.

:class:`DiskStorage` implements :class:`raftcore.storage.Storage`. The directory layout, every file
format byte by byte, the recovery rules and the repair advice are in ``docs/storage.md``.
"""

from kvserver.storage.disk_storage import DEFAULT_SEGMENT_BYTES, DiskStorage
from kvserver.storage.errors import (
    CorruptionError,
    DataDirLockedError,
    StorageFullError,
    StorageIOError,
)
from kvserver.storage.fs import DirLock, FileHandle, FileSystem, OsFileSystem

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "CorruptionError",
    "DataDirLockedError",
    "DirLock",
    "DiskStorage",
    "FileHandle",
    "FileSystem",
    "OsFileSystem",
    "StorageFullError",
    "StorageIOError",
]
