"""Typed errors of the disk storage engine, beyond the ones the storage contract defines.

Every error names what the operator needs: the file and byte offset for damaged data, the errno
for a failed write, the holder for a locked directory. All derive from
:class:`raftcore.storage.StorageError`, so a caller that only knows the contract still catches them.
"""

from __future__ import annotations

from raftcore.storage import StorageError

__all__ = [
    "CorruptionError",
    "DataDirLockedError",
    "StorageFullError",
    "StorageIOError",
]

REPAIR_ADVICE = (
    "Nothing after this point was read and nothing was changed. Stop the node, keep a copy of the "
    "data directory, and follow 'Repair' in docs/storage.md."
)


class CorruptionError(StorageError):
    """A data file fails a checksum or format check in a way a crash cannot explain.

    ``path`` and ``offset`` locate the first bad byte range; ``problem`` says what check failed.
    """

    def __init__(self, path: str, offset: int, problem: str) -> None:
        self.path = path
        self.offset = offset
        self.problem = problem
        super().__init__(f"{path}: byte offset {offset}: {problem}. {REPAIR_ADVICE}")


class StorageIOError(StorageError):
    """The operating system failed a read, write or sync (``errno`` holds its code, or None).

    A failed ``save()`` has been rolled back: the files hold exactly what was acknowledged before.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(message)


class StorageFullError(StorageIOError):
    """The disk (or quota) is full. Nothing durable was lost; writes work again with space."""


class DataDirLockedError(StorageError):
    """Another storage object (in this process or another one) holds the data directory's lock."""

    def __init__(self, data_dir: str, holder: str) -> None:
        self.data_dir = data_dir
        self.holder = holder
        who = f"process {holder}" if holder else "another process (pid not recorded)"
        super().__init__(
            f"data directory {data_dir} is locked by {who}: one node per directory. Stop that "
            "process, or point this one at its own directory."
        )
