"""``python -m lincheck HISTORY.jsonl``: check a recorded history from the shell.

Exit status: 0 linearizable, 1 not linearizable, 2 bad usage or a malformed history,
3 unknown (the time or step budget ran out).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from lincheck.checker import Verdict, check_history
from lincheck.history import HistoryError, read_history

EXIT_OK = 0
EXIT_ILLEGAL = 1
EXIT_BAD_INPUT = 2
EXIT_UNKNOWN = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lincheck",
        description="Check a JSON-lines KV history for linearizability (exit 0 ok, 1 not "
        "linearizable, 2 bad input, 3 budget exhausted).",
    )
    parser.add_argument("history", help="JSON lines, one operation per line")
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up after this many seconds (verdict 3)"
    )
    parser.add_argument(
        "--max-steps", type=int, default=None, help="give up after this many search steps"
    )
    parser.add_argument(
        "--witness",
        metavar="STEM",
        default=None,
        help="on failure write STEM.linearized.jsonl and STEM.unplaced.jsonl",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    if (args.timeout is not None and args.timeout < 0) or (
        args.max_steps is not None and args.max_steps < 0
    ):
        print("error: --timeout and --max-steps must not be negative", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        history = read_history(args.history)
    except (OSError, HistoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    result = check_history(history, timeout=args.timeout, max_steps=args.max_steps)
    elapsed = time.perf_counter() - started
    summary = (
        f"{result.operations} operations, {result.partitions} partition(s), "
        f"{result.steps} search steps, {elapsed:.3f} s"
    )
    if result.verdict is Verdict.OK:
        print(f"linearizable: {summary}")
        return EXIT_OK
    if result.verdict is Verdict.UNKNOWN:
        print(f"unknown (budget exhausted): {summary}")
        for keys in result.unresolved:
            print(f"  unresolved keys: {list(keys)}")
        return EXIT_UNKNOWN
    assert result.witness is not None
    print(f"NOT linearizable: {summary}")
    print(result.witness.describe())
    if args.witness is not None:
        for path in result.witness.write(args.witness):
            print(f"wrote {path}")
    return EXIT_ILLEGAL


if __name__ == "__main__":
    sys.exit(main())
