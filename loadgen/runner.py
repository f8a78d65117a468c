"""The parent of a benchmark run: target cluster, worker processes, phases, and the totals.

Theory of operation
-------------------
:func:`run_benchmark` (1) starts the cluster for ``--spawn`` (:class:`~loadgen.spawn.
SpawnedCluster`) and waits for a leader, (2) starts P :mod:`loadgen.worker` processes and gives
each its share of the clients, (3) has them preload every key, (4) sends them one ``run`` with
the measured window as absolute ``time.monotonic_ns`` instants (warm-up first), and (5) adds up
their per-second reports until every worker has said ``done``. The parent itself is a plain
``selectors`` loop over the workers' stdout: it does no client work, so one process per core
goes to the load. It prints the progress line once per second from the reports that arrived.

The measured window is the same for every worker (it starts at one instant, and ends at the
other in ``--duration`` mode); in ``--operations`` mode each client has a quota of measured
operations and the window ends when the last worker's last client meets its quota. Elapsed
time is from the window's start to the latest worker's end.

Stopping: a first SIGINT or SIGTERM during the run ends the measured phase early (the report
covers what was measured, marked interrupted); a second one, or one outside the run, aborts
(:class:`Interrupted`). Every exit path closes the workers' stdin (they abort on that), then
terminates, kills and reaps them, and stops the spawned nodes.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from cluster.processes import STOP_GRACE_S, child_env, stop_children
from cluster.status import wait_for_leader
from lincheck import read_history, write_history
from loadgen.progress import Progress
from loadgen.spawn import SpawnedCluster
from loadgen.stats import OpStats, StatsSet
from loadgen.worker import REPORT_INTERVAL_S, WorkerConfig
from loadgen.workload import Workload, split_evenly
from rpc.loop import run

__all__ = [
    "BenchConfig",
    "BenchError",
    "BenchResult",
    "ClusterUnavailable",
    "Interrupted",
    "run_benchmark",
]

LEADER_TIMEOUT_S = 20.0
# How long past its due end a worker may take to say done: its clients' last operations may
# each run for the operation timeout.
_DONE_SLACK_S = 10.0


class BenchError(RuntimeError):
    """The benchmark could not run: a worker died, or a spawned node did not come up."""


class ClusterUnavailable(BenchError):
    """No leader could be found, or not one preload write succeeded."""


class Interrupted(Exception):
    """A signal aborted the run; ``signum`` is the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass(frozen=True)
class BenchConfig:
    """Everything ``raftkv bench`` was asked to do (validated by the CLI)."""

    workload: Workload
    processes: int
    duration: float | None
    operations: int | None
    warmup: float
    preload: bool
    op_timeout: float
    history: Path | None
    servers: list[tuple[str, int]] | None = None
    spawn: int = 0
    fsync: bool = True
    lease_reads: bool = False
    data_dir: Path | None = None
    shared_clerk: bool = False


@dataclass
class BenchResult:
    """What a run measured; :mod:`loadgen.report` renders it."""

    config: BenchConfig
    servers: list[tuple[str, int]]
    measured: StatsSet = field(default_factory=StatsSet)
    elapsed_s: float = 0.0
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    preload: OpStats | None = None
    preload_s: float = 0.0
    interrupted: bool = False


def run_benchmark(config: BenchConfig, progress_stream: TextIO = sys.stderr) -> BenchResult:
    """Run the benchmark ``config`` describes; stop every process it started on every path.

    Raises ClusterUnavailable, BenchError, Interrupted, or OSError (a directory it cannot use).
    """
    progress = Progress(progress_stream)
    with _signals() as signals:
        if config.spawn:
            with SpawnedCluster(
                config.spawn,
                data_dir=config.data_dir,
                fsync=config.fsync,
                lease_reads=config.lease_reads,
            ) as cluster:
                progress.note(f"started {config.spawn} node(s); waiting for a leader")
                run(cluster.wait_leader(LEADER_TIMEOUT_S))
                return _run_workers(config, cluster.servers, progress, signals)
        assert config.servers is not None
        leader = run(wait_for_leader(config.servers, config.op_timeout))
        if leader is None:
            raise ClusterUnavailable("no node reports being the leader")
        return _run_workers(config, config.servers, progress, signals)


class _Signals:
    """SIGINT/SIGTERM: during the measured run the first one asks for an early stop."""

    def __init__(self) -> None:
        self.soft = False
        self.stop_requested: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.soft and self.stop_requested is None:
            self.stop_requested = signum
            return
        raise Interrupted(signum)


@contextmanager
def _signals() -> Iterator[_Signals]:
    state = _Signals()
    previous = {sig: signal.signal(sig, state.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _WorkerProc:
    """One worker subprocess and the JSON lines it has sent."""

    def __init__(self, index: int, proc: subprocess.Popen[bytes]) -> None:
        self.index = index
        self.proc = proc
        self.buffer = bytearray()
        self.done: dict[str, Any] | None = None
        self.eof = False

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ConnectionResetError):
            raise BenchError(self.describe_death()) from None

    def describe_death(self) -> str:
        code = self.proc.poll()
        how = "stopped answering" if code is None else f"exited with code {code}"
        return f"load worker {self.index} (pid {self.proc.pid}) {how}"

    def read_messages(self) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None
        data = os.read(self.proc.stdout.fileno(), 1 << 20)
        if not data:
            self.eof = True
            return []
        self.buffer.extend(data)
        messages = []
        while (end := self.buffer.find(b"\n")) >= 0:
            messages.append(json.loads(self.buffer[:end]))
            del self.buffer[: end + 1]
        return messages


def _start_workers(
    config: BenchConfig,
    servers: list[tuple[str, int]],
    workers: list[_WorkerProc],
    parts: list[Path],
) -> None:
    """Start the workers, appending each to ``workers`` (and its history part to ``parts``) at
    once, so the caller can stop every one started even if a later one fails."""
    env = child_env()
    workload = config.workload
    shares = split_evenly(workload.clients, config.processes)
    quotas = None
    if config.operations is not None:
        quotas = split_evenly(config.operations, workload.clients)
    first = 0
    for index, clients in enumerate(shares):
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadgen.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            process_group=0,
        )
        worker = _WorkerProc(index, proc)
        workers.append(worker)
        history = None
        if config.history is not None:
            part = config.history.with_name(f"{config.history.name}.worker{index}")
            parts.append(part)
            history = str(part)
        worker.send(
            WorkerConfig(
                servers=servers,
                workload=workload,
                first_client=first,
                clients=clients,
                op_timeout=config.op_timeout,
                history=history,
                quotas=None if quotas is None else quotas[first : first + clients],
                shared_clerk=config.shared_clerk,
            ).to_message()
        )
        first += clients


def _stop_workers(workers: list[_WorkerProc]) -> None:
    for worker in workers:
        if worker.proc.stdin is not None and not worker.proc.stdin.closed:
            with suppress(BrokenPipeError):
                worker.proc.stdin.close()
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in workers:
        with suppress(subprocess.TimeoutExpired):
            worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    stop_children([worker.proc for worker in workers], STOP_GRACE_S)
    for worker in workers:
        if worker.proc.stdout is not None:
            worker.proc.stdout.close()


def _run_workers(
    config: BenchConfig,
    servers: list[tuple[str, int]],
    progress: Progress,
    signals: _Signals,
) -> BenchResult:
    result = BenchResult(config, servers)
    workers: list[_WorkerProc] = []
    parts: list[Path] = []
    completed = False
    try:
        _start_workers(config, servers, workers, parts)
        with selectors.DefaultSelector() as selector:
            for worker in workers:
                assert worker.proc.stdout is not None
                selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
            phase = _Phase(selector, workers, progress)
            if config.preload:
                _preload(config, result, phase)
            _measure(config, result, phase, signals)
        # Each worker writes its history part as it exits.
        for worker in workers:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in workers:
            worker.proc.wait(timeout=STOP_GRACE_S + config.op_timeout)
        completed = True
    finally:
        _stop_workers(workers)
        # Merged only after a complete run; a failed run leaves no partial files behind.
        if completed and config.history is not None:
            _merge_histories(config.history, parts)
        for part in parts:
            part.unlink(missing_ok=True)
    return result


class _Phase:
    """Pumps the workers' messages, calling a handler per message and a tick once a second."""

    def __init__(
        self, selector: selectors.BaseSelector, workers: list[_WorkerProc], progress: Progress
    ) -> None:
        self.selector = selector
        self.workers = workers
        self.progress = progress

    def pump(
        self,
        on_message: Callable[[_WorkerProc, dict[str, Any]], None],
        finished: Callable[[], bool],
        on_tick: Callable[[float], None],
        deadline: float | None = None,
    ) -> None:
        """Dispatch messages until ``finished()``; BenchError if a worker dies or ``deadline``
        (a time.monotonic instant) passes first."""
        next_tick = time.monotonic() + REPORT_INTERVAL_S
        while not finished():
            now = time.monotonic()
            if deadline is not None and now > deadline:
                stuck = [w.index for w in self.workers if w.done is None]
                raise BenchError(f"load workers {stuck} did not finish in time")
            if now >= next_tick:
                on_tick(now)
                next_tick += REPORT_INTERVAL_S
                continue
            for key, _ in self.selector.select(timeout=min(0.2, next_tick - now)):
                worker: _WorkerProc = key.data
                for message in worker.read_messages():
                    on_message(worker, message)
                if worker.eof:
                    self.selector.unregister(key.fileobj)
                    if worker.done is None:
                        raise BenchError(worker.describe_death())


def _preload(config: BenchConfig, result: BenchResult, phase: _Phase) -> None:
    keys = config.workload.keys
    stats = OpStats()
    answered: set[int] = set()
    written = 0
    started = time.monotonic()
    for worker in phase.workers:
        worker.send({"type": "preload"})

    def on_message(worker: _WorkerProc, message: dict[str, Any]) -> None:
        nonlocal written
        if message["type"] == "report":
            written += int(message["preloaded"])
        elif message["type"] == "preloaded":
            stats.merge(OpStats.from_dict(message["stats"]))
            answered.add(worker.index)

    def on_tick(now: float) -> None:
        phase.progress.show(f"preloading: {written:,}/{keys:,} keys written")

    phase.pump(on_message, lambda: len(answered) == len(phase.workers), on_tick)
    result.preload = stats
    result.preload_s = time.monotonic() - started
    if stats.ops == 0:
        kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(stats.errors.items()))
        raise ClusterUnavailable(f"no preload write succeeded ({kinds})")
    phase.progress.note(f"preloaded {stats.ops:,} keys in {result.preload_s:.1f} s")


def _measure(config: BenchConfig, result: BenchResult, phase: _Phase, signals: _Signals) -> None:
    start_ns = time.monotonic_ns()
    measure_start = start_ns + int(config.warmup * 1e9)
    measure_end = None
    if config.duration is not None:
        measure_end = measure_start + int(config.duration * 1e9)
    for worker in phase.workers:
        worker.send({"type": "run", "measure_start": measure_start, "measure_end": measure_end})
    warm = StatsSet()
    interval = StatsSet()
    interval_cpu = 0.0
    stop_sent = False

    def on_message(worker: _WorkerProc, message: dict[str, Any]) -> None:
        nonlocal interval_cpu
        if message["type"] == "report":
            measured = StatsSet.from_dict(message["measured"])
            result.measured.merge(measured)
            warm.merge(StatsSet.from_dict(message["warm"]))
            interval.merge(measured)
            interval.merge(StatsSet.from_dict(message["warm"]))
            interval_cpu += float(message["cpu"])
        elif message["type"] == "done":
            worker.done = message

    last_tick = time.monotonic()

    def on_tick(now: float) -> None:
        nonlocal interval, interval_cpu, last_tick, stop_sent
        if signals.stop_requested is not None and not stop_sent:
            stop_sent = True
            result.interrupted = True
            for worker in phase.workers:
                if worker.done is None:
                    worker.send({"type": "stop"})
        now_ns = time.monotonic_ns()
        span = now - last_tick
        phase.progress.tick(
            warming=now_ns < measure_start,
            since_s=abs(now_ns - measure_start) / 1e9,
            interval=interval.total(),
            span_s=span,
            total=(result.measured if now_ns >= measure_start else warm).total(),
            cpu_share=interval_cpu / span if span > 0 else 0.0,
        )
        interval, interval_cpu, last_tick = StatsSet(), 0.0, now

    deadline = None
    if measure_end is not None:
        deadline = measure_end / 1e9 + config.op_timeout + _DONE_SLACK_S
    signals.soft = True
    try:
        phase.pump(on_message, lambda: all(w.done for w in phase.workers), on_tick, deadline)
    finally:
        signals.soft = False
    phase.progress.finish()
    dones = [w.done for w in phase.workers if w.done is not None]
    result.interrupted = result.interrupted or signals.stop_requested is not None
    started = min(int(d["measure_start"]) for d in dones)
    ended = max(int(d["measure_end"]) for d in dones)
    result.elapsed_s = max(0.0, (ended - started) / 1e9)
    result.cpu_user_s = sum(float(d["cpu_user"]) for d in dones)
    result.cpu_system_s = sum(float(d["cpu_system"]) for d in dones)


def _merge_histories(path: Path, parts: list[Path]) -> None:
    operations = []
    for part in parts:
        operations += read_history(part)
    operations.sort(key=lambda op: op.call)
    write_history(path, operations)
