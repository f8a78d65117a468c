"""An in-memory file system for the storage tests: crashes, torn writes and full disks on demand.

It models what a power cut keeps: a file's bytes up to its last sync (``synced``), and the
directory's names (creations, renames, unlinks) as of its last ``sync_dir``. Every mutating
call counts as one operation; with ``crash_after=k`` the k-th one completes and then raises
:class:`SimulatedCrash` (a BaseException, so the code under test cannot swallow it).
:meth:`SimFileSystem.crash_image` then builds the file system a reboot would find. Beyond the
synced state it may keep what the kernel happened to write back before the power went: for every
file, none, half, all, or zeros in place of its unsynced appended bytes (``mode``, or per file),
and any prefix of the directory operations since the last ``sync_dir`` (a journalling file
system commits them in order).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from kvserver.storage import DataDirLockedError, DirLock, FileHandle

__all__ = ["CrashMode", "SimFileSystem", "SimulatedCrash"]

CrashMode = Literal["drop", "tear", "zeros", "keep"]
CRASH_MODES: tuple[CrashMode, ...] = ("drop", "tear", "zeros", "keep")


class SimulatedCrash(BaseException):
    """The simulated machine lost power after the operation that raised this."""


@dataclass(eq=False)
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    synced: bytes = b""


class _Handle:
    def __init__(self, fs: SimFileSystem, inode: _Inode) -> None:
        self._fs = fs
        self._inode = inode

    def write(self, data: bytes) -> None:
        self._fs.write(self._inode, bytes(data))

    def sync_data(self) -> None:
        self._fs.sync(self._inode)

    def sync(self) -> None:
        self._fs.sync(self._inode)

    def truncate(self, size: int) -> None:
        del self._inode.data[size:]
        self._fs.tick()

    def close(self) -> None:
        pass


class _Lock:
    def __init__(self, fs: SimFileSystem, path: str) -> None:
        self._fs = fs
        self._path = path

    def release(self) -> None:
        self._fs.locks.discard(self._path)


class SimFileSystem:
    """A FileSystem (see kvserver.storage.fs) in memory, for crash-point and full-disk tests."""

    def __init__(self) -> None:
        self.files: dict[str, _Inode] = {}
        self.durable: dict[str, _Inode] = {}
        self.locks: set[str] = set()
        self.ops = 0
        self.file_syncs = 0
        self.crash_after: int | None = None
        self.capacity: int | None = None
        self.fail_syncs: list[int] = []  # errnos the next syncs raise, in order
        # Directory operations not yet made durable by sync_dir, in order; each one is atomic and
        # sets names to an inode, or (None) removes them.
        self.pending_names: list[tuple[tuple[str, _Inode | None], ...]] = []

    # -- fault controls -------------------------------------------------------------------------

    def tick(self) -> None:
        """Count one mutating operation; crash if it is the chosen one."""
        self.ops += 1
        if self.crash_after is not None and self.ops >= self.crash_after:
            raise SimulatedCrash(f"crash after operation {self.ops}")

    def used(self) -> int:
        """Bytes held by all files (the volatile view)."""
        return sum(len(inode.data) for inode in set(self.files.values()))

    def crash_image(
        self,
        mode: CrashMode = "drop",
        *,
        per_file: Mapping[str, CrashMode] | None = None,
        names_kept: int = 0,
    ) -> SimFileSystem:
        """The file system after a power cut now.

        Synced names and bytes; plus, for every file, its unsynced appended bytes treated per
        ``mode`` (or ``per_file[path]``); plus the first ``names_kept`` directory operations since
        the last ``sync_dir`` (see :attr:`pending_names`)."""
        names = dict(self.durable)
        for operation in self.pending_names[:names_kept]:
            for path, inode in operation:
                if inode is None:
                    names.pop(path, None)
                else:
                    names[path] = inode
        image = SimFileSystem()
        copies: dict[int, _Inode] = {}
        for name, inode in names.items():
            if id(inode) not in copies:
                file_mode = (per_file or {}).get(name, mode)
                copies[id(inode)] = _Inode(bytearray(_survivor(inode, file_mode)))
            copy = copies[id(inode)]
            copy.synced = bytes(copy.data)
            image.files[name] = copy
        image.durable = dict(image.files)
        return image

    # -- the FileSystem protocol ----------------------------------------------------------------

    def write(self, inode: _Inode, data: bytes) -> None:
        """Append ``data`` to ``inode``; past ``capacity``, write what fits and raise ENOSPC."""
        if self.capacity is not None:
            free = max(0, self.capacity - self.used())
            if free < len(data):
                inode.data += data[:free]
                self.tick()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        inode.data += data
        self.tick()

    def sync(self, inode: _Inode) -> None:
        """Make ``inode``'s bytes durable, unless a failure was queued in ``fail_syncs``."""
        if self.fail_syncs:
            code = self.fail_syncs.pop(0)
            self.tick()
            raise OSError(code, os.strerror(code))
        inode.synced = bytes(inode.data)
        self.file_syncs += 1
        self.tick()

    def makedirs(self, path: str) -> None:
        pass

    def listdir(self, path: str) -> list[str]:
        return [os.path.basename(name) for name in self.files if os.path.dirname(name) == path]

    def create(self, path: str) -> FileHandle:
        if self.capacity is not None and self.used() >= self.capacity:
            self.tick()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        inode = self.files.get(path)
        if inode is None:
            inode = self.files[path] = _Inode()
            self.pending_names.append(((path, inode),))
        else:
            inode.data.clear()
        self.tick()
        return _Handle(self, inode)

    def open_append(self, path: str) -> FileHandle:
        return _Handle(self, self._inode(path))

    def read(self, path: str) -> bytes:
        return bytes(self._inode(path).data)

    def read_at(self, path: str, offset: int, length: int) -> bytes:
        return bytes(self._inode(path).data[offset : offset + length])

    def size(self, path: str) -> int:
        return len(self._inode(path).data)

    def rename(self, src: str, dst: str) -> None:
        self.files[dst] = self._inode(src)
        del self.files[src]
        self.pending_names.append(((dst, self.files[dst]), (src, None)))
        self.tick()

    def unlink(self, path: str) -> None:
        self._inode(path)
        del self.files[path]
        self.pending_names.append(((path, None),))
        self.tick()

    def sync_dir(self, path: str) -> None:
        if self.fail_syncs:
            code = self.fail_syncs.pop(0)
            self.tick()
            raise OSError(code, os.strerror(code))
        self.durable = {k: v for k, v in self.durable.items() if os.path.dirname(k) != path}
        self.durable.update((k, v) for k, v in self.files.items() if os.path.dirname(k) == path)
        self.pending_names = [op for op in self.pending_names if os.path.dirname(op[0][0]) != path]
        self.tick()

    def lock(self, path: str) -> DirLock:
        if path in self.locks:
            raise DataDirLockedError(os.path.dirname(path), str(os.getpid()))
        self.locks.add(path)
        return _Lock(self, path)

    def _inode(self, path: str) -> _Inode:
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path) from None


def _survivor(inode: _Inode, mode: CrashMode) -> bytes:
    """What of ``inode`` a power cut leaves: its synced bytes and, per ``mode``, its unsynced
    appended ones. After an unsynced truncate below the synced size: the synced bytes, or with
    ``keep`` the file as it is now (the truncate and what followed it reached the disk)."""
    synced = inode.synced
    data = bytes(inode.data)
    if not data.startswith(synced):
        return data if mode == "keep" else synced
    if mode == "drop":
        return synced
    extra = data[len(synced) :]
    if mode == "tear":
        return synced + extra[: len(extra) // 2]
    if mode == "zeros":
        return synced + bytes(len(extra))
    return data
