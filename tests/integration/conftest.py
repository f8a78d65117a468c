"""Fixtures for the real-process tests: node and client processes, always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path

import pytest
from workload import ClientLoad

from cluster.processes import ProcCluster


@pytest.fixture
def make_cluster(tmp_path: Path) -> Generator[Callable[..., ProcCluster]]:
    """``make_cluster(n, max_raft_state=None, extra_args=(), node_args=None)``: a started
    cluster (see ProcCluster), stopped after the test."""
    made: list[ProcCluster] = []

    def make(
        n: int,
        *,
        max_raft_state: int | None = None,
        extra_args: Sequence[str] = (),
        node_args: Mapping[int, Sequence[str]] | None = None,
    ) -> ProcCluster:
        cluster = ProcCluster(
            tmp_path, n, max_raft_state=max_raft_state, extra_args=extra_args, node_args=node_args
        )
        made.append(cluster)
        cluster.start_all()
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def make_load() -> Generator[Callable[..., ClientLoad]]:
    """``make_load(cluster, clients=3, op_timeout=3.0)``: started load-client processes, killed
    after the test if still running (torn down before the cluster they load)."""
    made: list[ClientLoad] = []

    def make(cluster: ProcCluster, clients: int = 3, *, op_timeout: float = 3.0) -> ClientLoad:
        load = ClientLoad(cluster, clients, op_timeout=op_timeout)
        made.append(load)
        load.start()
        return load

    yield make
    for load in made:
        load.close()
