"""Seeds and pacing for the kvraft scenarios.

Each scenario takes ``kv_seed``: seed 1 by default, only ``--seed S`` when given, and seeds
0..N-1 when ``--seeds N`` is given explicitly (the option of ``tests/conftest.py``; its default
of 200 is meant for the Raft campaign and would make the kvraft suite run for an hour, so the
kvraft scenarios widen only when asked). The seed is in each test's id, and a failure report
names the command that replays it.

``paced(think_ms)`` is the client pause a scenario asks for, or 0 (the course's back-to-back
clients, about ten times the runtime) under ``--kv-course-pace`` (registered in
``tests/conftest.py``: pytest reads options only from the top-level conftest).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import pytest

DEFAULT_KV_SEED = 1

_KV_SEED_KEY = pytest.StashKey[int]()


def _seeds_given(config: pytest.Config) -> bool:
    return any(
        arg == "--seeds" or arg.startswith("--seeds=") for arg in config.invocation_params.args
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kv_seed" not in metafunc.fixturenames:
        return
    config = metafunc.config
    only = config.getoption("--seed")
    if only is not None:
        seeds = [int(only)]
    elif _seeds_given(config):
        seeds = list(range(int(config.getoption("--seeds"))))
    else:
        seeds = [DEFAULT_KV_SEED]
    metafunc.parametrize("kv_seed", seeds, ids=[f"seed={s}" for s in seeds])


@pytest.fixture
def paced(request: pytest.FixtureRequest) -> Callable[[int], int]:
    """``paced(think_ms)``: the scenario's client pause, or 0 under ``--kv-course-pace``."""
    course_pace = bool(request.config.getoption("--kv-course-pace"))
    return lambda think_ms: 0 if course_pace else think_ms


@pytest.fixture(autouse=True)
def _remember_kv_seed(request: pytest.FixtureRequest) -> None:
    if "kv_seed" in request.fixturenames:
        request.node.stash[_KV_SEED_KEY] = int(request.getfixturevalue("kv_seed"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    seed = item.stash.get(_KV_SEED_KEY, None)
    if seed is not None and report.failed:
        path = item.nodeid.split("[", 1)[0]
        report.sections.append(
            ("kvraft seed", f"seed {seed}; replay with: pytest '{path}' --seed {seed}")
        )
    return report
