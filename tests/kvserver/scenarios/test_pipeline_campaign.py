"""The pipeline campaign (``kvserver.testing.campaign``): 200 seeds of the simulated KV cluster
running the node's own asynchronous pipeline, with crashes landing between a Ready's write and
its sync. The invariant checker runs on every step; every acknowledged append must survive.
The mutants that break the core's durability rules are in ``tests/raftcore/campaign``."""

from __future__ import annotations

import pytest

from kvserver.testing.campaign import PipelineResult, run_pipeline_campaign

SEEDS = 200
RESULTS: list[PipelineResult] = []


@pytest.mark.parametrize("seed", range(SEEDS), ids=[f"seed={s}" for s in range(SEEDS)])
def test_pipeline_campaign(seed: int) -> None:
    """One seed: safety throughout, and every acknowledged append in place at the end."""
    result = run_pipeline_campaign(seed)
    assert result.problems == []
    RESULTS.append(result)


def test_pipeline_campaign_covers_its_cases() -> None:
    """Across the seeds every cluster size ran, crashes happened, clients got answers, and
    disks of very different speeds met."""
    results = RESULTS or [run_pipeline_campaign(seed) for seed in range(40)]
    assert {r.servers for r in results} == {1, 3, 5}
    assert all(r.crashes > 0 for r in results)
    assert sum(r.acknowledged > 0 for r in results) > 0.9 * len(results)
    assert any(high >= 50 * low for low, high in (r.fsync_us for r in results))
