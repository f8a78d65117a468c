"""Fixtures for the storage tests: one storage of each kind, restartable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvserver.storage import DiskStorage
from raftcore.memory_storage import MemoryStorage
from raftcore.storage import Storage

VOTERS = (1, 2, 3)


class Restartable:
    """A storage under test and a way to 'restart the node' on what it made durable."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._dir = tmp_path / "data"
        self.storage: Storage = self._open() if kind == "disk" else MemoryStorage(VOTERS)

    def _open(self) -> DiskStorage:
        return DiskStorage(self._dir, voters=VOTERS, segment_bytes=512)

    def restart(self) -> Storage:
        """Drop the storage object and reopen from its durable state (a copy, for memory)."""
        if isinstance(self.storage, DiskStorage):
            self.storage.close()
            self.storage = self._open()
        else:
            assert isinstance(self.storage, MemoryStorage)
            self.storage = self.storage.copy()
        return self.storage

    def close(self) -> None:
        """Release the directory, if any."""
        if isinstance(self.storage, DiskStorage):
            self.storage.close()


@pytest.fixture(params=["memory", "disk"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Restartable]:
    """A fresh storage of each implementation, with voters (1, 2, 3)."""
    restartable = Restartable(request.param, tmp_path)
    yield restartable
    restartable.close()
