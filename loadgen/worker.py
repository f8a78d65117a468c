"""One load-generating worker process: ``python -m loadgen.worker``, driven by its parent.

Why a subprocess of its own rather than ``multiprocessing``: the parent and the worker talk in
JSON lines over the worker's stdin and stdout, nothing is pickled, and the worker runs in its own
process group with its stdin a pipe from the parent, exactly like the spawned server nodes. So a
terminal's Ctrl-C reaches only the parent (which stops the workers in order), and a parent that
dies, even by SIGKILL, closes the pipe, which the worker takes as "abort now": no orphan survives.

Theory of operation
-------------------
The worker runs ``clients`` closed-loop clients on one uvloop event loop, each with its own
:class:`clerk.AsyncClerk` (its own session) doing one operation at a time, or with
``shared_clerk`` all on one clerk (one session). Either way the clerks of a worker share one
connection per server (:class:`clerk.Connections`), as an application's clients would share a
connection pool: their calls are multiplexed, and replies to many clients arrive in one read. The
parent sends, one JSON object per line on stdin:

- ``config``: the servers, the :class:`~loadgen.workload.Workload`, this worker's clients (global
  indexes ``first_client`` .. ``first_client + clients - 1``), the operation timeout, an optional
  history file, and optional per-client operation quotas;
- ``preload``: the worker's clients put every key ``i`` with ``i % workload.clients`` equal to
  their global index, with :data:`PRELOAD_IN_FLIGHT` puts in flight over all workers together,
  then it answers ``preloaded``;
- ``run``: the clients start at once (warm-up); operations that complete at or after
  ``measure_start`` (a ``time.monotonic_ns`` instant, one clock for every process of the
  machine) are measured; a client stops when it completes an operation at or after
  ``measure_end``, or when it has completed its quota of measured operations;
- ``stop``: end the measured phase now (what ends past this point is not counted).

End of stdin aborts: operations in flight are cancelled, the history (if any) is written, and
the worker exits. Every second the worker sends a ``report`` line (the warm-up and measured
:class:`~loadgen.stats.StatsSet` deltas, keys preloaded and CPU seconds spent, all since the
last report); at the end a last report and a ``done`` line with the measured window and the CPU
seconds it cost.

Per operation the client does the clerk call, two ``perf_counter_ns`` reads and one histogram
increment; nothing is logged or allocated beyond what the clerk does (with ``--history`` the
clerk records the operation and every write carries a unique value, which costs CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from clerk import AsyncClerk, Connections, OperationTimeoutError, ServerError
from lincheck import HistoryRecorder
from loadgen.stats import TIMEOUT, OpStats, StatsSet
from loadgen.workload import (
    OpPicker,
    Workload,
    client_seed,
    make_keys,
    preload_value,
)
from rpc.loop import run

__all__ = ["PRELOAD_IN_FLIGHT", "REPORT_INTERVAL_S", "WorkerConfig", "main"]

REPORT_INTERVAL_S = 1.0
PRELOAD_IN_FLIGHT = 256
"""Preload puts in flight over every client together (a client runs several at once)."""


@dataclass(frozen=True)
class WorkerConfig:
    """What one worker runs (the ``config`` message)."""

    servers: list[tuple[str, int]]
    workload: Workload
    first_client: int
    clients: int
    op_timeout: float
    history: str | None
    quotas: list[int] | None
    shared_clerk: bool = False

    def to_message(self) -> dict[str, Any]:
        """The ``config`` message for the worker's stdin."""
        return {
            "type": "config",
            "servers": [list(address) for address in self.servers],
            "workload": self.workload.to_dict(),
            "first_client": self.first_client,
            "clients": self.clients,
            "op_timeout": self.op_timeout,
            "history": self.history,
            "quotas": self.quotas,
            "shared_clerk": self.shared_clerk,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> WorkerConfig:
        """The configuration a ``config`` message carries."""
        return cls(
            servers=[(str(host), int(port)) for host, port in message["servers"]],
            workload=Workload.from_dict(message["workload"]),
            first_client=int(message["first_client"]),
            clients=int(message["clients"]),
            op_timeout=float(message["op_timeout"]),
            history=message["history"],
            quotas=message["quotas"],
            shared_clerk=bool(message["shared_clerk"]),
        )


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _cpu_seconds() -> tuple[float, float]:
    times = os.times()
    return times.user, times.system


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, OperationTimeoutError):
        return TIMEOUT
    if isinstance(exc, ServerError):
        return exc.err
    return type(exc).__name__


class _Client:
    """One closed-loop client: an AsyncClerk and the operations it draws."""

    def __init__(
        self, worker: Worker, index: int, kv: AsyncClerk, quota: int | None, unique: bool
    ) -> None:
        workload = worker.config.workload
        self.worker = worker
        self.index = index
        self.kv = kv
        self.quota = quota
        self.picker = OpPicker(
            workload.mix, workload.keys, random.Random(client_seed(workload.seed, index))
        )
        self.value = (f"c{index}.".encode() * (workload.value_size // 3 + 1))[: workload.value_size]
        # With a history, every write carries its own value so the checker can tell them apart.
        self.unique = unique
        self.sequence = 0
        # What this client last saw in each key (for cas' expected value); only kept for cas.
        self.known: dict[int, bytes] | None = {} if workload.mix.cas > 0 else None
        self.ops: list[Callable[[int], Awaitable[bool]]] = [
            self._get,
            self._put,
            self._append,
            self._cas,
        ]

    def _next_value(self) -> bytes:
        if not self.unique:
            return self.value
        self.sequence += 1
        tagged = f"c{self.index}.{self.sequence}.".encode()
        size = self.worker.config.workload.value_size
        return (tagged + self.value)[:size]

    # Each operation returns whether it was an applied conditional write (only cas can be).

    async def _get(self, k: int) -> bool:
        value = await self.kv.get(self.worker.keys[k])
        if self.known is not None and value is not None:
            self.known[k] = value
        return False

    async def _put(self, k: int) -> bool:
        value = self._next_value()
        await self.kv.put(self.worker.keys[k], value)
        if self.known is not None:
            self.known[k] = value
        return False

    async def _append(self, k: int) -> bool:
        await self.kv.append(self.worker.keys[k], self._next_value())
        if self.known is not None:
            self.known.pop(k, None)
        return False

    async def _cas(self, k: int) -> bool:
        assert self.known is not None
        new = self._next_value()
        result = await self.kv.cas(
            self.worker.keys[k], self.known.get(k, self.worker.preload_value), new
        )
        if result.applied:
            self.known[k] = new
        elif result.previous is not None:
            self.known[k] = result.previous
        return result.applied

    async def preload(self, key_indexes: range) -> None:
        """Put the preload value to every key in ``key_indexes``, recording each outcome."""
        worker = self.worker
        stats = worker.preload_stats
        perf = time.perf_counter_ns
        for k in key_indexes:
            started = perf()
            try:
                await self.kv.put(worker.keys[k], worker.preload_value)
            except Exception as exc:  # counted, never fatal: the report shows every kind
                stats.add_error(_error_kind(exc))
            else:
                stats.latency.record(perf() - started)

    async def run(self) -> None:
        """Operations one after another until the measured phase (or the quota) ends."""
        worker = self.worker
        perf = time.perf_counter_ns
        pick = self.picker.pick
        ops = self.ops
        left = self.quota
        while True:
            op, k = pick()
            started = perf()
            try:
                applied = await ops[op](k)
            except Exception as exc:  # counted by kind, never fatal: the report shows them
                kind: str | None = _error_kind(exc)
            else:
                kind = None
            ended = perf()
            if ended >= worker.measure_end:
                return
            measured = ended >= worker.measure_start
            if measured and left is not None:
                if left == 0:  # a client with no measured share stops after the warm-up
                    return
                left -= 1
            stats = (worker.measured if measured else worker.warm).by_op[op]
            if kind is None:
                stats.latency.record(ended - started)
                if applied:
                    stats.applied += 1
            else:
                stats.add_error(kind)
            if measured and left == 0:
                worker.last_finish = max(worker.last_finish, ended)
                return


class Worker:
    """The worker of the module docstring; :meth:`serve` runs it until done or aborted."""

    def __init__(self) -> None:
        self.commands: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.warm = StatsSet()
        self.measured = StatsSet()
        self.preload_stats = OpStats()
        self.preloaded_reported = 0
        self.cpu_reported = sum(_cpu_seconds())
        # perf_counter_ns instants; "never" until the run message says otherwise.
        self.measure_start = self.measure_end = 1 << 62
        self.last_finish = 0
        self.cpu_start = _cpu_seconds()
        self.config: WorkerConfig
        self.keys: list[bytes]
        self.preload_value: bytes

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        fd = sys.stdin.fileno()
        os.set_blocking(fd, False)
        pending = bytearray()

        def on_readable() -> None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                self.commands.put_nowait(None)
                return
            pending.extend(data)
            while (end := pending.find(b"\n")) >= 0:
                line = bytes(pending[:end])
                del pending[: end + 1]
                self.commands.put_nowait(json.loads(line))

        loop.add_reader(fd, on_readable)

    def _report(self) -> None:
        warm, measured = self.warm, self.measured
        self.warm, self.measured = StatsSet(), StatsSet()
        preloaded = self.preload_stats.ops + self.preload_stats.error_count
        user, system = _cpu_seconds()
        _send(
            {
                "type": "report",
                "warm": warm.to_dict(),
                "measured": measured.to_dict(),
                "preloaded": preloaded - self.preloaded_reported,
                "cpu": user + system - self.cpu_reported,
            }
        )
        self.preloaded_reported = preloaded
        self.cpu_reported = user + system

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            self._report()

    async def _until_done_or_told(self, work: asyncio.Task[Any]) -> bool:
        """Wait for ``work``, obeying ``stop`` meanwhile; False if stdin ended (work cancelled)."""
        while not work.done():
            command = asyncio.ensure_future(self.commands.get())
            await asyncio.wait({work, command}, return_when=asyncio.FIRST_COMPLETED)
            if not command.done():
                command.cancel()
                break
            message = command.result()
            if message is None:
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                return False
            if message["type"] == "stop":
                self.measure_end = min(self.measure_end, time.perf_counter_ns())
        await work
        return True

    async def serve(self) -> None:
        """Run the worker until it is done, or until stdin ends."""
        self._listen(asyncio.get_running_loop())
        first = await self.commands.get()
        if first is None:
            return
        self.config = config = WorkerConfig.from_message(first)
        workload = config.workload
        self.keys = make_keys(workload.keys, workload.key_size)
        self.preload_value = preload_value(workload.value_size)
        history = HistoryRecorder() if config.history is not None else None
        indexes = range(config.first_client, config.first_client + config.clients)
        connections = Connections(config.servers)
        if config.shared_clerk:
            clerk = AsyncClerk(connections, op_timeout=config.op_timeout, history=history)
            clerks = [clerk] * config.clients
        else:
            clerks = [
                AsyncClerk(connections, op_timeout=config.op_timeout, history=history)
                for _ in indexes
            ]
        quotas: list[int | None] = [None] * config.clients
        if config.quotas is not None:
            quotas = list(config.quotas)
        clients = [
            _Client(self, index, kv, quota, history is not None)
            for index, kv, quota in zip(indexes, clerks, quotas, strict=True)
        ]
        ticker = asyncio.create_task(self._tick())
        try:
            await self._obey(clients, workload)
        finally:
            ticker.cancel()
            await asyncio.gather(*(kv.close() for kv in set(clerks)))
            await connections.close()
            if history is not None and config.history is not None:
                history.write(config.history)

    async def _obey(self, clients: list[_Client], workload: Workload) -> None:
        while (message := await self.commands.get()) is not None:
            kind = message["type"]
            if kind == "preload":
                # Key i goes to lane i % lanes; client c runs lanes c, c + C, ... concurrently.
                lanes = workload.clients * -(-PRELOAD_IN_FLIGHT // workload.clients)
                work = asyncio.gather(
                    *(
                        c.preload(range(lane, workload.keys, lanes))
                        for c in clients
                        for lane in range(c.index, lanes, workload.clients)
                    )
                )
                if not await self._until_done_or_told(asyncio.ensure_future(work)):
                    return
                self._report()
                _send({"type": "preloaded", "stats": self.preload_stats.to_dict()})
            elif kind == "run":
                offset = time.perf_counter_ns() - time.monotonic_ns()
                self.measure_start = int(message["measure_start"]) + offset
                end = message["measure_end"]
                self.measure_end = 1 << 62 if end is None else int(end) + offset
                loop = asyncio.get_running_loop()
                delay = max(0.0, (self.measure_start - time.perf_counter_ns()) / 1e9)
                loop.call_later(delay, self._start_cpu_clock)
                work = asyncio.gather(*(c.run() for c in clients))
                if not await self._until_done_or_told(asyncio.ensure_future(work)):
                    return
                self._finish()
                return

    def _start_cpu_clock(self) -> None:
        self.cpu_start = _cpu_seconds()

    def _finish(self) -> None:
        now = time.perf_counter_ns()
        if self.last_finish == 0 or self.measure_end < now:
            end = min(self.measure_end, now)
        else:
            end = self.last_finish
        user, system = _cpu_seconds()
        self._report()
        offset = time.perf_counter_ns() - time.monotonic_ns()
        _send(
            {
                "type": "done",
                "measure_start": self.measure_start - offset,
                "measure_end": max(end, self.measure_start) - offset,
                "cpu_user": user - self.cpu_start[0],
                "cpu_system": system - self.cpu_start[1],
            }
        )


async def _serve() -> None:
    await Worker().serve()


def main() -> None:
    """Serve the parent on stdin/stdout until done or stdin ends."""
    run(_serve())


if __name__ == "__main__":
    main()
