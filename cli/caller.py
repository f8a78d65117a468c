"""``callerMain``: the original's demo client, with latency figures at the end.

It loops ``Put("x", i)`` then ``Get("x")``, printing ``get return :{<value>}`` for each Get as the
original did, for ``-n COUNT`` rounds (0: until Ctrl-C), then prints the p50 and p99 latency of
each operation and the number of rounds. The clerk retries through a leader failover; an
operation that gets no answer within ``--timeout`` ends the run with exit code 3.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Sequence

from clerk import Clerk, ConfigError, OperationTimeoutError
from cli.common import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, configure_logging, load_servers

__all__ = ["main", "percentile"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ascending, non-empty ``sorted_values``."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callerMain", description="Put x=i then Get x in a loop, like the original demo."
    )
    parser.add_argument("-f", "--file", default="test.conf", help="test.conf (default ./test.conf)")
    parser.add_argument("-n", "--count", type=int, default=0, help="rounds (default 0: forever)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per operation (default 10)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``callerMain`` with ``argv`` (default sys.argv[1:]); return the exit code."""
    args = _parser().parse_args(argv)
    configure_logging("WARNING")
    try:
        if args.count < 0 or args.timeout <= 0:
            raise ConfigError("-n must not be negative and --timeout must be positive")
        servers = load_servers(args.file)
    except ConfigError as exc:
        print(f"callerMain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    latencies: dict[str, list[float]] = {"put": [], "get": []}
    code = EXIT_OK
    with Clerk(servers, op_timeout=args.timeout) as kv:
        rounds = range(args.count) if args.count else itertools.count()
        try:
            for i in rounds:
                start = time.perf_counter()
                kv.put("x", str(i))
                middle = time.perf_counter()
                value = kv.get("x")
                end = time.perf_counter()
                latencies["put"].append(middle - start)
                latencies["get"].append(end - middle)
                shown = "" if value is None else value.decode("utf-8", errors="backslashreplace")
                print(f"get return :{{{shown}}}", flush=True)
        except OperationTimeoutError as exc:
            print(f"callerMain: cluster unavailable: {exc}", file=sys.stderr)
            code = EXIT_UNAVAILABLE
        except KeyboardInterrupt:
            pass
    for op, values in latencies.items():
        if values:
            values.sort()
            p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
            print(f"{op}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(f"count: {len(latencies['get'])}")
    return code


if __name__ == "__main__":
    sys.exit(main())
