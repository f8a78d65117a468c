"""Fixtures for the real-process tests: a cluster of node processes, always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path

import pytest
from proc_cluster import ProcCluster


@pytest.fixture
def make_cluster(tmp_path: Path) -> Generator[Callable[..., ProcCluster]]:
    """``make_cluster(n, max_raft_state=None)``: a started cluster, stopped after the test."""
    made: list[ProcCluster] = []

    def make(n: int, *, max_raft_state: int | None = None) -> ProcCluster:
        cluster = ProcCluster(tmp_path, n, max_raft_state=max_raft_state)
        made.append(cluster)
        cluster.start_all()
        return cluster

    yield make
    for cluster in made:
        cluster.close()
