"""Shared pytest configuration.

Simulation seeds: every simulated-cluster test takes its seed from the ``sim_seed`` fixture
(``--seed S`` overrides the default), and the randomized campaign runs one test per seed
(``campaign_seed``): seeds 0..N-1 with ``--seeds N`` (default 200), or only ``--seed S``. A failing
simulation test reports the command that replays it exactly.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

DEFAULT_SCENARIO_SEED = 1
DEFAULT_CAMPAIGN_SEEDS = 200

_SEED_KEY = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simulation", "deterministic simulated cluster")
    group.addoption(
        "--seed",
        type=int,
        default=None,
        help="run simulated-cluster tests (scenarios and campaign) with this one seed",
    )
    group.addoption(
        "--seeds",
        type=int,
        default=DEFAULT_CAMPAIGN_SEEDS,
        help=(
            f"how many campaign seeds to run (default {DEFAULT_CAMPAIGN_SEEDS}); given "
            "explicitly, also the kvraft scenarios' seeds 0..N-1"
        ),
    )
    group.addoption(
        "--kv-course-pace",
        action="store_true",
        default=False,
        help="kvraft scenarios: clients send operations back to back as in 6.5840 (~10x slower)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "campaign_seed" in metafunc.fixturenames:
        only = metafunc.config.getoption("--seed")
        count = metafunc.config.getoption("--seeds")
        if count < 1:
            raise pytest.UsageError("--seeds must be at least 1")
        seeds = [only] if only is not None else list(range(count))
        metafunc.parametrize("campaign_seed", seeds, ids=[f"seed={s}" for s in seeds])


@pytest.fixture
def sim_seed(request: pytest.FixtureRequest) -> int:
    """The seed of a simulated-cluster scenario: ``--seed`` or the fixed default."""
    only = request.config.getoption("--seed")
    seed = DEFAULT_SCENARIO_SEED if only is None else int(only)
    request.node.stash[_SEED_KEY] = seed
    return seed


@pytest.fixture(autouse=True)
def _remember_campaign_seed(request: pytest.FixtureRequest) -> None:
    if "campaign_seed" in request.fixturenames:
        request.node.stash[_SEED_KEY] = int(request.getfixturevalue("campaign_seed"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    seed = item.stash.get(_SEED_KEY, None)
    if seed is not None and report.failed:
        path = item.nodeid.split("[", 1)[0]
        report.sections.append(
            ("simulation seed", f"seed {seed}; replay with: pytest '{path}' --seed {seed}")
        )
    return report
