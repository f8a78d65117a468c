"""``raftkv bench``: the load generator's command line (the work is in :mod:`loadgen`).

The flags (README.md's ``raftkv bench`` table) and the ``--json`` object (``loadgen/report.py``)
are a contract, consumed by ``bench/compare.py``: add, never rename. Exit codes: 0 the run happened
(even with some errors), 1 the benchmark itself failed (a load worker died, spawned nodes did not
come up), 2 usage or configuration error (one line on stderr), 3 no operation succeeded (the
cluster is unavailable), 128 + N when signal N aborted it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.common import load_servers
from cluster.status import ClusterStartError
from kvapi.config import ConfigError
from loadgen.report import format_report, to_json
from loadgen.runner import (
    BenchConfig,
    BenchError,
    ClusterUnavailable,
    Interrupted,
    run_benchmark,
)
from loadgen.workload import Mix, Workload, WorkloadError, parse_mix

__all__ = ["EXIT_FAILED", "add_bench_arguments", "bench_config", "run_bench"]

EXIT_FAILED = 1
_EXIT_USAGE = 2
_EXIT_UNAVAILABLE = 3
_DEFAULT_CONF = "test.conf"
_DEFAULT_DURATION_S = 10.0
_DEFAULT_READ_RATIO = 0.5


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``raftkv bench`` (its own ``-f`` and ``--timeout``: see the module doc)."""
    target = parser.add_argument_group("target (default: the cluster in ./test.conf)")
    target.add_argument(
        "-f", "--file", dest="bench_file", default=None, metavar="CONF", help="test.conf"
    )
    target.add_argument("--spawn", type=int, metavar="N", help="start N local nodes for the run")
    target.add_argument(
        "--no-fsync", action="store_true", help="spawned nodes do not fsync (benchmarks only)"
    )
    target.add_argument(
        "--lease-reads", action="store_true", help="spawned nodes serve reads from their lease"
    )
    target.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="spawned nodes' data directory (kept; default: a temp dir)",
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--clients", type=int, default=16, metavar="C", help="closed-loop clients (default 16)"
    )
    load.add_argument(
        "--processes", type=int, default=2, metavar="P", help="worker processes (default 2)"
    )
    load.add_argument("--duration", type=float, metavar="T", help="measured seconds (default 10)")
    load.add_argument("--operations", type=int, metavar="N", help="measured operations instead")
    load.add_argument(
        "--shared-clerk",
        action="store_true",
        help="a process's clients share one clerk (one session) instead of one clerk each",
    )
    load.add_argument(
        "--warmup", type=float, default=1.0, metavar="W", help="unmeasured seconds (default 1)"
    )
    load.add_argument(
        "--timeout",
        dest="bench_timeout",
        type=float,
        default=None,
        metavar="SEC",
        help="per operation (default: raftkv's --timeout, 5 s)",
    )
    workload = parser.add_argument_group("workload")
    workload.add_argument("--value-size", type=int, default=100, metavar="B", help="default 100")
    workload.add_argument("--key-size", type=int, default=16, metavar="S", help="default 16")
    workload.add_argument("--keys", type=int, default=1000, metavar="K", help="default 1000")
    workload.add_argument(
        "--read-ratio", type=float, metavar="R", help="gets R, puts 1-R (default 0.5)"
    )
    workload.add_argument(
        "--mix", metavar="OP=W,...", help="weights, e.g. get=50,put=30,append=10,cas=10"
    )
    workload.add_argument(
        "--no-preload", action="store_true", help="do not write every key before the run"
    )
    workload.add_argument(
        "--seed", type=int, default=1, metavar="S", help="the workload's seed (default 1)"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    output.add_argument("--history", type=Path, metavar="FILE", help="record a lincheck history")


def bench_config(args: argparse.Namespace) -> BenchConfig:
    """The run ``args`` ask for; ConfigError or WorkloadError (one-line message) if invalid."""
    top_level_file = getattr(args, "file", _DEFAULT_CONF)
    if args.spawn is not None:
        if args.bench_file is not None or top_level_file != _DEFAULT_CONF:
            raise ConfigError("give either -f (a running cluster) or --spawn N, not both")
        if args.spawn < 1:
            raise ConfigError(f"--spawn must be at least 1, not {args.spawn}")
        servers = None
    else:
        for flag, given in (
            ("--no-fsync", args.no_fsync),
            ("--lease-reads", args.lease_reads),
            ("--data-dir", args.data_dir is not None),
        ):
            if given:
                raise ConfigError(f"{flag} configures spawned nodes: use it with --spawn N")
        servers = load_servers(args.bench_file or top_level_file)
    if args.duration is not None and args.operations is not None:
        raise ConfigError("give either --duration or --operations, not both")
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration must be positive, not {args.duration}")
    if args.operations is not None and args.operations < 1:
        raise ConfigError(f"--operations must be at least 1, not {args.operations}")
    if not args.warmup >= 0:
        raise ConfigError(f"--warmup must not be negative, not {args.warmup}")
    if args.processes < 1:
        raise ConfigError(f"--processes must be at least 1, not {args.processes}")
    timeout = args.bench_timeout if args.bench_timeout is not None else args.timeout
    if not timeout > 0:
        raise ConfigError(f"--timeout must be positive, not {timeout}")
    if args.mix is not None and args.read_ratio is not None:
        raise ConfigError("give either --read-ratio or --mix, not both")
    if args.mix is not None:
        mix = parse_mix(args.mix)
    else:
        mix = Mix.read_ratio(_DEFAULT_READ_RATIO if args.read_ratio is None else args.read_ratio)
    workload = Workload(
        clients=args.clients,
        keys=args.keys,
        key_size=args.key_size,
        value_size=args.value_size,
        mix=mix,
        seed=args.seed,
    )
    if args.history is not None and not args.history.parent.resolve().is_dir():
        raise ConfigError(f"--history {args.history}: no directory {args.history.parent}")
    duration = args.duration
    if duration is None and args.operations is None:
        duration = _DEFAULT_DURATION_S
    return BenchConfig(
        workload=workload,
        # More processes than clients would leave some idle.
        processes=min(args.processes, args.clients),
        duration=duration,
        operations=args.operations,
        warmup=args.warmup,
        preload=not args.no_preload,
        op_timeout=timeout,
        history=args.history,
        servers=servers,
        spawn=args.spawn or 0,
        fsync=not args.no_fsync,
        lease_reads=args.lease_reads,
        data_dir=args.data_dir,
        shared_clerk=args.shared_clerk,
    )


def run_bench(args: argparse.Namespace) -> int:
    """Run ``raftkv bench`` with parsed arguments; return the exit code."""
    try:
        config = bench_config(args)
    except (ConfigError, WorkloadError) as exc:
        return _fail(str(exc), _EXIT_USAGE)
    try:
        result = run_benchmark(config)
    except ClusterUnavailable as exc:
        return _fail(f"cluster unavailable: {exc}", _EXIT_UNAVAILABLE)
    except (BenchError, ClusterStartError) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except Interrupted as exc:
        return _fail(str(exc), 128 + exc.signum)
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}", _EXIT_USAGE)
    if args.json:
        print(json.dumps(to_json(result)))
    else:
        print(format_report(result))
    if result.measured.total().ops == 0:
        return _fail("no operation succeeded: the cluster is unavailable", _EXIT_UNAVAILABLE)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"raftkv bench: {message}", file=sys.stderr)
    return code
