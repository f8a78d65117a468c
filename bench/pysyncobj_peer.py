"""One PySyncObj node with in-process load generation, driven line by line over stdin/stdout.

Run by ``bench.compare`` (``python -m bench.pysyncobj_peer --self H:P --partner H:P ...``), never
by hand. PySyncObj has no network client, so, as its own benchmarks do, the load is generated
inside the node process through its callback API: a replicated ``set`` on a ``ReplDict`` is
queued, and it counts as committed when its callback fires with ``FAIL_REASON.SUCCESS`` (the
entry is on a majority and applied here).

Theory of operation
-------------------
PySyncObj's tick thread (``autoTick``) does all Raft work and fires every callback. The load is
a closed loop: ``inflight`` sets are issued at once and each callback issues the next one, so
exactly ``inflight`` requests are outstanding until the run stops. The main thread only reads
commands, opens and closes the measuring window (after a warm-up) and waits for the loop to
drain, so figures are never polluted by a previous run's requests. Only the tick thread changes
the counters; the main thread reads them (int reads are atomic under the GIL).

Protocol: each stdin line is one JSON object and gets one JSON line on stdout.

- ``{"op": "status"}`` -> ``{"self": "H:P", "leader": "H:P" | null, "is_leader": bool}``
- ``{"op": "load", "inflight": N, "warmup_s": W, "duration_s": T}`` ->
  ``{"committed": n, "window_s": s, "errors": {"NAME": count}, "latencies_ms": [...],
  "drained": bool}``; ``latencies_ms`` holds every request committed inside the window.
- ``{"op": "quit"}`` or end of input: destroy the node and exit 0.

The log is PySyncObj's in-memory journal (no ``journalFile``): nothing is written to disk.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj.batteries import ReplDict

__all__ = ["ClosedLoop", "main"]

DRAIN_TIMEOUT_S = 10.0
# FAIL_REASON's numeric codes by name, for readable error counts.
_REASON_NAMES = {value: name for name, value in vars(FAIL_REASON).items() if isinstance(value, int)}


class ClosedLoop:
    """Keeps ``inflight`` replicated sets outstanding on ``table`` until stopped.

    ``keys`` are drawn uniformly with ``rng``; every set writes ``value``. Callbacks run on
    PySyncObj's tick thread; ``run`` is called from another thread and blocks for the run.
    """

    def __init__(self, table: Any, keys: Sequence[bytes], value: bytes, rng: random.Random) -> None:
        self._table = table
        self._keys = keys
        self._value = value
        self._rng = rng
        self._stopping = False
        self._measuring = False
        self._outstanding = 0
        self._drained = threading.Event()
        self.committed = 0
        self.errors: Counter[str] = Counter()
        self.latencies_ms: list[float] = []

    def _issue(self) -> None:
        key = self._keys[self._rng.randrange(len(self._keys))]
        issued = time.perf_counter()

        def callback(_result: Any, err: int) -> None:
            self._done(issued, err)

        self._table.set(key, self._value, callback=callback)

    def _done(self, issued: float, err: int) -> None:
        if err == FAIL_REASON.SUCCESS:
            self.committed += 1
            if self._measuring:
                self.latencies_ms.append((time.perf_counter() - issued) * 1000.0)
        else:
            self.errors[_REASON_NAMES.get(err, str(err))] += 1
        if self._stopping:
            self._outstanding -= 1
            if self._outstanding == 0:
                self._drained.set()
        else:
            self._issue()

    def run(self, inflight: int, warmup_s: float, duration_s: float) -> dict[str, Any]:
        """Run the loop: ``warmup_s`` unmeasured, ``duration_s`` measured, then drain.

        Returns the protocol's ``load`` reply. ``drained`` is false when some requests had no
        callback within ``DRAIN_TIMEOUT_S`` after the window closed.
        """
        if inflight < 1:
            raise ValueError(f"inflight must be >= 1, got {inflight}")
        self._stopping = False
        self._drained.clear()
        self._outstanding = inflight
        self.latencies_ms = []
        self.errors = Counter()
        for _ in range(inflight):
            self._issue()
        time.sleep(warmup_s)
        self._measuring = True
        start_count, start = self.committed, time.perf_counter()
        time.sleep(duration_s)
        self._measuring = False
        end_count, window = self.committed, time.perf_counter() - start
        self._stopping = True
        drained = self._drained.wait(DRAIN_TIMEOUT_S)
        return {
            "committed": end_count - start_count,
            "window_s": window,
            "errors": dict(self.errors),
            "latencies_ms": [round(x, 4) for x in self.latencies_ms],
            "drained": drained,
        }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self", dest="self_addr", required=True, help="this node, host:port")
    parser.add_argument("--partner", action="append", required=True, help="another node")
    parser.add_argument("--no-batch", action="store_true", help="appendEntriesUseBatch=False")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--key-size", type=int, default=16)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    return parser


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Start the node, serve protocol lines until ``quit`` or end of input; exit status 0."""
    args = _parser().parse_args(argv)
    rng = random.Random(args.seed)
    keys = [rng.randbytes(args.key_size) for _ in range(args.keys)]
    value = rng.randbytes(args.value_size)
    table = ReplDict()
    conf = SyncObjConf(appendEntriesUseBatch=not args.no_batch)
    node = SyncObj(args.self_addr, args.partner, conf, consumers=[table])
    loop = ClosedLoop(table, keys, value, rng)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            op = request.get("op")
            if op == "status":
                leader = node._getLeader()
                _reply(
                    {
                        "self": args.self_addr,
                        "leader": None if leader is None else leader.address,
                        "is_leader": bool(node._isLeader()),
                    }
                )
            elif op == "load":
                _reply(
                    loop.run(
                        int(request["inflight"]),
                        float(request["warmup_s"]),
                        float(request["duration_s"]),
                    )
                )
            elif op == "quit":
                break
            else:
                _reply({"error": f"unknown op {op!r}"})
    finally:
        node.destroy_synchronous()
    return 0


if __name__ == "__main__":
    sys.exit(main())
