"""Fixtures for the storage tests: one storage of each kind, restartable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage.helpers import Restartable


@pytest.fixture(params=["memory", "disk"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Restartable]:
    """A fresh storage of each implementation, with voters (1, 2, 3)."""
    restartable = Restartable(request.param, tmp_path)
    yield restartable
    restartable.close()
