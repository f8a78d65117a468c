"""The file-system seam: every byte the disk storage reads or writes goes through a FileSystem.

Production uses :class:`OsFileSystem` (plain POSIX calls). The tests substitute an in-memory file
system that models what survives a power cut (only what was synced; renames and unlinks only once
the directory was synced), crashes after any chosen call, and fills up on demand. Keeping the seam
this narrow (create, append, sync, truncate, rename, unlink, sync the directory, read) is what makes
every crash point enumerable.

Methods raise :class:`OSError` like the system calls they wrap; the storage engine translates.
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Protocol

from kvserver.storage.errors import DataDirLockedError

__all__ = ["DirLock", "FileHandle", "FileSystem", "OsFileSystem"]


class FileHandle(Protocol):
    """A file open for appending."""

    def write(self, data: bytes) -> None:
        """Append all of ``data`` (short writes are retried; a failure may leave a prefix)."""
        ...

    def sync_data(self) -> None:
        """Make the data and the size durable (fdatasync)."""
        ...

    def sync(self) -> None:
        """Make data and all metadata durable (fsync)."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes; later appends land there."""
        ...

    def close(self) -> None:
        """Release the handle (no sync)."""
        ...


class DirLock(Protocol):
    """An exclusive lock on a data directory, held until released or the process dies."""

    def release(self) -> None:
        """Give the lock up."""
        ...


class FileSystem(Protocol):
    """The operations the disk storage needs from a file system."""

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents if missing."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Names of the entries in directory ``path``."""
        ...

    def create(self, path: str) -> FileHandle:
        """Create ``path`` empty (truncating any file there) and open it for appending."""
        ...

    def open_append(self, path: str) -> FileHandle:
        """Open the existing file ``path`` for appending."""
        ...

    def read(self, path: str) -> bytes:
        """The whole content of ``path``."""
        ...

    def read_at(self, path: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of ``path`` from ``offset``."""
        ...

    def size(self, path: str) -> int:
        """Size of ``path`` in bytes."""
        ...

    def rename(self, src: str, dst: str) -> None:
        """Atomically replace ``dst`` by ``src`` (durable once the directory is synced)."""
        ...

    def unlink(self, path: str) -> None:
        """Remove ``path`` (durable once the directory is synced)."""
        ...

    def sync_dir(self, path: str) -> None:
        """Make the directory's entries (creations, renames, unlinks) durable."""
        ...

    def lock(self, path: str) -> DirLock:
        """Take the exclusive lock file ``path``; raise DataDirLockedError if someone holds it."""
        ...


class _OsFileHandle:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def sync_data(self) -> None:
        # fdatasync also flushes the file size, which is all the metadata an append changes.
        if hasattr(os, "fdatasync"):
            os.fdatasync(self._fd)
        else:
            os.fsync(self._fd)

    def sync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def close(self) -> None:
        os.close(self._fd)


class _FlockLock:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class OsFileSystem:
    """The real file system, through ``os``; the lock is ``fcntl.flock`` holding our pid."""

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def create(self, path: str) -> FileHandle:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        return _OsFileHandle(os.open(path, flags, 0o644))

    def open_append(self, path: str) -> FileHandle:
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        return _OsFileHandle(os.open(path, flags))

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def read_at(self, path: str, offset: int, length: int) -> bytes:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> DirLock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirLockedError(os.path.dirname(path), holder) from exc
            raise
        # Record the holder for the error message of whoever comes next; the lock itself is flock's.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return _FlockLock(fd)
