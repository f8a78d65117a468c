"""Fixtures for the torture tier: networks of namespaces, always torn down, and the seed.

Every test module here sets ``pytestmark = pytest.mark.torture`` (deselected by the default
run; ``make torture`` runs them). ``TORTURE_SEED`` fixes the seed of the faults (default: a
fresh one, printed with any failure); ``TORTURE_SECONDS`` is how long the randomized campaign
runs (default 20).
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Generator
from pathlib import Path

import pytest

# The load clients and their checks are the integration tests' (tests/integration/workload.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from harness import Torture
from netns import NetworkUnavailable, check_available, remove_leftovers, run_prefix

_SEED_KEY = pytest.StashKey[int]()
_unavailable: list[str] = []


@pytest.fixture(scope="session")
def netns_ready() -> Generator[None]:
    """Skip unless namespaces and nft work; remove what dead runs left, and at the end
    whatever this run left."""
    try:
        check_available()
    except NetworkUnavailable as exc:
        _unavailable.append(str(exc))
    if _unavailable:
        pytest.skip(f"torture tier skipped: {_unavailable[0]}")
    remove_leftovers(None)
    try:
        yield
    finally:
        remove_leftovers(run_prefix())


@pytest.fixture
def torture_seed(request: pytest.FixtureRequest) -> int:
    """``TORTURE_SEED`` or a fresh seed (reported with a failure)."""
    raw = os.environ.get("TORTURE_SEED")
    seed = int(raw) if raw else random.SystemRandom().randrange(1 << 32)
    request.node.stash[_SEED_KEY] = seed
    return seed


@pytest.fixture
def torture_seconds() -> float:
    """How long the randomized campaign runs: ``TORTURE_SECONDS`` (default 20)."""
    return float(os.environ.get("TORTURE_SECONDS") or 20)


@pytest.fixture
def make_torture(
    netns_ready: None, tmp_path: Path, torture_seed: int
) -> Generator[Callable[..., Torture]]:
    """``make_torture(n, lease_reads=..., delay_proxy=False)``: nodes running in a fresh
    network; every process and namespace is gone after the test, whatever happened."""
    made: list[Torture] = []

    def make(n: int, *, lease_reads: bool, delay_proxy: bool = False) -> Torture:
        workdir = tmp_path / f"run{len(made)}"
        workdir.mkdir()
        torture = Torture(
            workdir, n, lease_reads=lease_reads, seed=torture_seed, delay_proxy=delay_proxy
        )
        made.append(torture)
        return torture

    try:
        yield make
    finally:
        for torture in made:
            torture.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    seed = item.stash.get(_SEED_KEY, None)
    if seed is not None and (report.failed or hasattr(report, "wasxfail")):
        replay = f"TORTURE_SEED={seed} make torture TORTURE_ARGS='-k \"{item.name}\"'"
        report.sections.append(("torture seed", f"seed {seed}; replay with: {replay}"))
    return report
