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
- A request it cannot serve (bad JSON, unknown op, ``inflight`` < 1) gets ``{"error": "..."}``
  and the node carries on.

:class:`PeerCluster` is the other end: it starts three such processes on free ports, waits until
all agree on one leader and drives the load there (loading every node was measured slower: a
follower forwards each command to the leader and waits for the commit to reach it).

The log is PySyncObj's in-memory journal (no ``journalFile``): nothing is written to disk.
"""

from __future__ import annotations

import argparse
import json
import random
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj.batteries import ReplDict

from cluster.conf import free_ports
from cluster.processes import STOP_GRACE_S

__all__ = ["DURABILITY", "ClosedLoop", "PeerCluster", "PeerError", "main"]

DURABILITY = "in-memory log (journalFile=None): no disk writes, no fsync"
"""What PySyncObj's nodes keep on disk in this benchmark."""
DRAIN_TIMEOUT_S = 10.0
LEADER_TIMEOUT_S = 20.0
REPLY_TIMEOUT_S = 30.0
# PySyncObj's follower-side warning that it dropped entries it had already applied.
DIVERGENCE_WARNING = "state machine may have diverged"
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


def _handle(request: dict[str, Any], self_addr: str, node: Any, loop: ClosedLoop) -> dict[str, Any]:
    op = request.get("op")
    if op == "status":
        leader = node._getLeader()
        return {
            "self": self_addr,
            "leader": None if leader is None else leader.address,
            "is_leader": bool(node._isLeader()),
        }
    if op == "load":
        inflight, warmup_s = int(request["inflight"]), float(request["warmup_s"])
        return loop.run(inflight, warmup_s, float(request["duration_s"]))
    raise ValueError(f"unknown op {op!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Start the node, serve protocol lines until ``quit`` or end of input; exit status 0."""
    args = _parser().parse_args(argv)
    rng = random.Random(args.seed)
    keys = [rng.randbytes(args.key_size) for _ in range(args.keys)]
    value = rng.randbytes(args.value_size)
    table = ReplDict()
    # A node that dialled a partner not yet listening redials after connectionRetryTime (5 s by
    # default): shorter, so the cluster forms quickly. It does not touch the steady state.
    conf = SyncObjConf(appendEntriesUseBatch=not args.no_batch, connectionRetryTime=0.5)
    node = SyncObj(args.self_addr, args.partner, conf, consumers=[table])
    loop = ClosedLoop(table, keys, value, rng)
    try:
        for line in sys.stdin:
            try:
                request = json.loads(line)
                if request.get("op") == "quit":
                    break
                _reply(_handle(request, args.self_addr, node, loop))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # A bad request is answered, not fatal: the driver raises it as a PeerError.
                _reply({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        node.destroy_synchronous()
    return 0


class PeerError(RuntimeError):
    """A PySyncObj peer died, answered nonsense, or the cluster found no leader in time."""


class PeerCluster:
    """Three PySyncObj peer processes on 127.0.0.1 with batching on or off; a context manager.

    Entering starts them and waits for one leader every node agrees on; leaving (on every path)
    asks each to quit, then terminates or kills any still running and reaps all of them. The
    peers' stderr (PySyncObj's own log) goes to a temporary file read by ``warnings``.
    """

    def __init__(
        self, batch: bool, keys: int = 1000, key_size: int = 16, value_size: int = 100
    ) -> None:
        self.batch = batch
        self._options = ["--keys", str(keys), "--key-size", str(key_size)]
        self._options += ["--value-size", str(value_size)]
        self._procs: list[subprocess.Popen[str]] = []
        self._log: IO[str] | None = None
        self._log_lines: list[str] = []
        self._leader: subprocess.Popen[str] | None = None

    def __enter__(self) -> PeerCluster:
        addrs = [f"127.0.0.1:{port}" for port in free_ports(3)]
        self._log = tempfile.TemporaryFile("w+", encoding="utf-8")
        try:
            for addr in addrs:
                command = [sys.executable, "-m", "bench.pysyncobj_peer", "--self", addr]
                for other in addrs:
                    if other != addr:
                        command += ["--partner", other]
                command += self._options + ([] if self.batch else ["--no-batch"])
                self._procs.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=self._log,
                        text=True,
                        cwd=Path(__file__).resolve().parent.parent,
                    )
                )
            self._leader = self._wait_leader()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def processes(self) -> list[subprocess.Popen[str]]:
        """The peer processes (for checks that none is left running)."""
        return list(self._procs)

    def _ask(
        self,
        proc: subprocess.Popen[str],
        request: dict[str, Any],
        timeout_s: float = REPLY_TIMEOUT_S,
    ) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
        except BrokenPipeError as exc:
            raise PeerError(f"peer exited with {proc.poll()}: {self.warnings()[-3:]}") from exc
        # One request, one reply line: nothing is buffered ahead, so select sees the reply.
        readable, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not readable:
            raise PeerError(f"peer gave no reply to {request} within {timeout_s:.0f} s")
        line = proc.stdout.readline()
        if not line:
            raise PeerError(f"peer exited with {proc.wait()}: {self.warnings()[-3:]}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise PeerError(str(reply["error"]))
        return reply

    def _wait_leader(self) -> subprocess.Popen[str]:
        deadline = time.monotonic() + LEADER_TIMEOUT_S
        while time.monotonic() < deadline:
            statuses = [self._ask(proc, {"op": "status"}) for proc in self._procs]
            leaders = [i for i, st in enumerate(statuses) if st["is_leader"]]
            if len(leaders) == 1:
                leader_addr = statuses[leaders[0]]["self"]
                if all(st["leader"] == leader_addr for st in statuses):
                    return self._procs[leaders[0]]
            time.sleep(0.1)
        raise PeerError(f"no agreed PySyncObj leader within {LEADER_TIMEOUT_S} s")

    def load(self, inflight: int, warmup_s: float, duration_s: float) -> dict[str, Any]:
        """Run one closed-loop load on the leader; the peer protocol's ``load`` reply."""
        if self._leader is None:
            raise PeerError("the cluster is not started")
        request = {"op": "load", "inflight": inflight}
        request |= {"warmup_s": warmup_s, "duration_s": duration_s}
        timeout_s = warmup_s + duration_s + DRAIN_TIMEOUT_S + REPLY_TIMEOUT_S
        return self._ask(self._leader, request, timeout_s)

    def warnings(self) -> list[str]:
        """Every line the peers logged so far (all of them once closed)."""
        if self._log is None:
            return list(self._log_lines)
        self._log.seek(0)
        lines = [line.rstrip("\n") for line in self._log]
        self._log.seek(0, 2)
        return lines

    def close(self) -> None:
        """Stop every peer (quit, then SIGTERM, then SIGKILL) and reap them; idempotent."""
        for proc in self._procs:
            if proc.stdin is not None and not proc.stdin.closed:
                try:
                    proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._leader = None
        if self._log is not None:
            self._log_lines = self.warnings()
            self._log.close()
            self._log = None


if __name__ == "__main__":
    sys.exit(main())
