"""One client-load process for the real-process tests: an AsyncClerk workload, fully recorded.

Run from a checkout (the project on PYTHONPATH)::

    python tests/integration/load_client.py --conf test.conf --client-id 0 \
        --history load0.jsonl --summary load0.json [--shared-keys s0,s1] [--duration S]

Theory of operation
-------------------
Client ``C`` loops over ``k = 0, 1, ...``; each round it

1. puts its own fresh key ``w.C.k`` = ``k`` (every acknowledged one must be readable later),
2. appends ``k,`` to its own key ``log.C`` (acknowledged ones exactly once and in order),
3. puts ``C.k``, appends ``C.k;`` or gets (in turn) one of the shared keys, which every client
   touches, so only the linearizability checker can judge them.

Every operation goes into a :class:`lincheck.HistoryRecorder` (``time.monotonic_ns``, one clock
for every process on a Linux machine, so the histories of several processes merge): ``ok`` when
answered, ``unknown`` for a write that timed out or was cut off by the stop, ``fail`` for a read
that got no answer. A timed-out operation is not retried: the client goes on with the next one.

The client stops when ``--duration`` passes, on SIGTERM or SIGINT, or (``--exit-with-stdin``)
when its standard input closes, so a test that dies leaves no client behind. Stopping cancels
the operation in flight. Then it writes the history (JSON lines) and the summary (JSON: the
acknowledged and unknown writes of its own keys) and exits 0. It prints ``running`` once its
first write was acknowledged, so a test knows the load is on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clerk import AsyncClerk, OperationTimeoutError
from cli.server import stop_on_stdin_eof
from lincheck import HistoryRecorder

RUNNING_LINE = "running"


def put_key(client: str, k: int) -> str:
    """The fresh key client ``client`` puts in round ``k``."""
    return f"w.{client}.{k}"


def put_prefix(client: str) -> tuple[str, str]:
    """The scan range ``[start, end)`` holding exactly the keys :func:`put_key` makes for
    ``client`` ('/' follows '.' in ASCII)."""
    return f"w.{client}.", f"w.{client}/"


def log_key(client: str) -> str:
    """The key client ``client`` appends its round numbers to."""
    return f"log.{client}"


@dataclass
class Summary:
    """What one client knows about its own keys' writes when it stops.

    ``acked_puts`` maps a put key to its value; ``acked_appends`` lists the round numbers whose
    append to the log key was acknowledged, in order; the ``unknown_*`` fields hold the writes
    whose outcome is unknown (they may or may not have taken effect).
    """

    client: str
    acked_puts: dict[str, str] = field(default_factory=dict)
    unknown_puts: list[str] = field(default_factory=list)
    acked_appends: list[str] = field(default_factory=list)
    unknown_appends: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        """Write the summary as one JSON object."""
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Summary:
        """Read a summary written by :meth:`save`."""
        return cls(**json.loads(path.read_text(encoding="utf-8")))


async def workload(
    kv: AsyncClerk, client: str, shared_keys: list[str], summary: Summary, running: asyncio.Event
) -> None:
    """Run the rounds of the module docstring until cancelled."""
    k = 0
    while True:
        key = put_key(client, k)
        try:
            await kv.put(key, str(k))
            summary.acked_puts[key] = str(k)
            running.set()
        except OperationTimeoutError:
            summary.unknown_puts.append(key)
        except asyncio.CancelledError:
            summary.unknown_puts.append(key)
            raise
        try:
            await kv.append(log_key(client), f"{k},")
            summary.acked_appends.append(str(k))
        except OperationTimeoutError:
            summary.unknown_appends.append(str(k))
        except asyncio.CancelledError:
            summary.unknown_appends.append(str(k))
            raise
        if shared_keys:
            shared = shared_keys[k % len(shared_keys)]
            kind = (k // len(shared_keys)) % 3
            with contextlib.suppress(OperationTimeoutError):
                if kind == 0:
                    await kv.put(shared, f"{client}.{k}")
                elif kind == 1:
                    await kv.append(shared, f"{client}.{k};")
                else:
                    await kv.get(shared)
        k += 1


async def run(args: argparse.Namespace) -> None:
    """Run the load until told to stop; then write the history and the summary."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_with_stdin:
        stop_on_stdin_eof(loop, stop)
    history = HistoryRecorder()
    summary = Summary(args.client_id)
    running = asyncio.Event()
    shared_keys = [key for key in args.shared_keys.split(",") if key]
    try:
        async with AsyncClerk(args.conf, op_timeout=args.op_timeout, history=history) as kv:
            load = asyncio.create_task(workload(kv, args.client_id, shared_keys, summary, running))
            announce = asyncio.create_task(running.wait())
            announce.add_done_callback(
                lambda task: task.cancelled() or print(RUNNING_LINE, flush=True)
            )
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait(
                [load, stopped], timeout=args.duration, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (load, announce, stopped):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load  # raises here if the workload itself failed
    finally:
        history.write(args.history)
        summary.save(args.summary)
    print(f"stopped after {len(history.history())} operations", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the module docstring."""
    parser = argparse.ArgumentParser(description="raftkv client load, recorded for lincheck")
    parser.add_argument("--conf", type=Path, required=True, help="the cluster's test.conf")
    parser.add_argument("--client-id", required=True, help="names this client's own keys")
    parser.add_argument("--history", type=Path, required=True, help="history out (JSON lines)")
    parser.add_argument("--summary", type=Path, required=True, help="summary out (JSON)")
    parser.add_argument("--shared-keys", default="s0,s1", help="comma-separated shared keys")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: no end)")
    parser.add_argument("--op-timeout", type=float, default=3.0, help="per operation, seconds")
    parser.add_argument(
        "--exit-with-stdin", action="store_true", help="stop when standard input closes"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(run(parse_args()))
