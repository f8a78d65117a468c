"""bench.rpc runs: a very short measurement of our stack (grpcio is a bench-only extra)."""

from __future__ import annotations

import argparse

from bench.rpc import run_once


def test_a_short_run_of_our_stack_measures_calls() -> None:
    args = argparse.Namespace(payload=100, concurrency=8, duration=0.3, warmup=0.05)
    result = run_once("ours", args)
    assert result.calls > 0 and len(result.latencies) == result.calls
    assert result.all_calls >= result.calls
    assert result.server_cpu > 0 and result.cpu_per_call_us > 0
    assert 0 < result.percentile(0.5) <= result.percentile(0.99)
