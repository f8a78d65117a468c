"""Client load from several processes for the real-process tests, and its checks.

:class:`ClientLoad` starts ``clients`` processes of ``load_client.py`` (see its docstring for
the workload) against a :class:`ProcCluster`, each with its output in
``<tmp>/load/client<c>.log``. :meth:`ClientLoad.stop` closes their standard input, which stops
them; each must exit 0 having written its history and its summary. Then:

- :meth:`ClientLoad.verify` reads every client's own keys through a checking clerk and asserts
  that every acknowledged put is there with its value, that no put that was never attempted is,
  and that the acknowledged appends are there exactly once and in order (an append whose outcome
  was unknown may be there too, once). The checking reads join the history.
- :meth:`ClientLoad.check_linearizable` runs lincheck on the merged history of every client, the
  checking reads and any operations the test recorded itself (all on ``time.monotonic_ns``,
  which every process on a Linux machine shares).

:meth:`ClientLoad.close` (called by the fixture, also on failure) kills and reaps any client
still running.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from load_client import RUNNING_LINE, Summary, log_key, put_prefix

from cluster.processes import ProcCluster, child_env
from kvapi.kvserver_rpc_pb2 import GetArgs, GetReply
from lincheck import HistoryRecorder, Operation, OpKind, Status, assert_linearizable, read_history
from rpc import RpcChannel, RpcError

LOAD_CLIENT = Path(__file__).resolve().parent / "load_client.py"
SHARED_KEYS = ("s0", "s1")
LINCHECK_BUDGET_S = 20.0


class ClientLoad:
    """``clients`` load-client processes on one cluster; their merged history once stopped."""

    def __init__(self, cluster: ProcCluster, clients: int = 3, *, op_timeout: float = 3.0) -> None:
        self.cluster = cluster
        self.names = [str(c) for c in range(clients)]
        self.op_timeout = op_timeout
        self.dir = cluster.workdir / "load"
        self.dir.mkdir(exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.history: list[Operation] = []
        self.summaries: list[Summary] = []
        self.checks = HistoryRecorder()

    def start(self) -> None:
        """Start every client process."""
        for name in self.names:
            command = [sys.executable, str(LOAD_CLIENT), "--conf", str(self.cluster.conf)]
            command += ["--client-id", name, "--shared-keys", ",".join(SHARED_KEYS)]
            command += ["--history", str(self.dir / f"client{name}.jsonl")]
            command += ["--summary", str(self.dir / f"client{name}.json")]
            command += ["--op-timeout", str(self.op_timeout), "--exit-with-stdin"]
            with open(self.dir / f"client{name}.log", "ab") as log:
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env(),
                    process_group=0,
                )
            self.procs.append(proc)

    def log(self, name: str) -> str:
        """Everything client ``name`` printed."""
        return (self.dir / f"client{name}.log").read_text(encoding="utf-8", errors="replace")

    async def wait_running(self, timeout: float = 20.0) -> None:
        """Wait until every client had a write acknowledged (fails if one exits first)."""
        waiting = set(self.names)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for name, proc in zip(self.names, self.procs, strict=True):
                assert proc.poll() is None, f"client {name} exited early:\n{self.log(name)}"
                if RUNNING_LINE in self.log(name).splitlines():
                    waiting.discard(name)
            if not waiting:
                return
            if asyncio.get_running_loop().time() > deadline:
                logs = "\n".join(f"client {name}:\n{self.log(name)}" for name in sorted(waiting))
                raise AssertionError(f"no write acknowledged within {timeout} s:\n{logs}")
            await asyncio.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every client, check it exited 0, and load its history and summary."""
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for name, proc in zip(self.names, self.procs, strict=True):
            code = proc.wait(timeout=timeout)
            assert code == 0, f"client {name} exited with {code}:\n{self.log(name)}"
            self.history += read_history(self.dir / f"client{name}.jsonl")
            self.summaries.append(Summary.load(self.dir / f"client{name}.json"))

    def close(self) -> None:
        """Kill and reap any client still running."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()

    def acknowledged_writes(self) -> int:
        """How many writes the clients had acknowledged."""
        return sum(op.status is Status.OK and op.op is not OpKind.GET for op in self.history)

    def clients_progressing_after(self, t_ns: int) -> set[str]:
        """The clients (their history ids) that had a write called after ``t_ns`` acknowledged."""
        return {
            str(op.client_id)
            for op in self.history
            if op.status is Status.OK and op.op is not OpKind.GET and op.call > t_ns
        }

    def client_ids(self) -> set[str]:
        """Every client's history id."""
        return {str(op.client_id) for op in self.history}

    async def verify(self) -> None:
        """Assert every client's acknowledged writes are in the store (see the module docstring)."""
        assert self.summaries, "stop() the load first"
        async with self.cluster.clerk(history=self.checks, op_timeout=20.0) as kv:
            for summary in self.summaries:
                assert summary.acked_puts, f"client {summary.client}: no write was acknowledged"
                start, end = put_prefix(summary.client)
                stored = {k.decode(): v.decode() for k, v in await kv.scan(start, end)}
                lost = {k: v for k, v in summary.acked_puts.items() if stored.get(k) != v}
                assert not lost, f"client {summary.client}: acknowledged puts lost: {lost}"
                attempted = set(summary.acked_puts) | set(summary.unknown_puts)
                invented = sorted(set(stored) - attempted)
                assert not invented, f"client {summary.client}: puts nobody made: {invented}"
                log = (await kv.get(log_key(summary.client)) or b"").decode()
                check_appends(summary, log.split(",")[:-1])
            for key in SHARED_KEYS:
                await kv.get(key)

    def check_linearizable(self, extra: Iterable[Operation] = ()) -> None:
        """Run lincheck on everything recorded (a failing history is saved beside the logs)."""
        operations = [*self.history, *self.checks.history(), *extra]
        assert_linearizable(
            operations, timeout=LINCHECK_BUDGET_S, save_to=self.dir / "not-linearizable"
        )


def check_appends(summary: Summary, stored: list[str]) -> None:
    """The log key holds each acknowledged append once, in order, and only attempted ones."""
    client = summary.client
    assert len(stored) == len(set(stored)), f"client {client}: an append applied twice: {stored}"
    attempted = set(summary.acked_appends) | set(summary.unknown_appends)
    assert set(stored) <= attempted, f"client {client}: appends nobody made: {stored}"
    missing = [token for token in summary.acked_appends if token not in stored]
    assert not missing, f"client {client}: acknowledged appends {missing} lost"
    # Rounds run one after another, so acknowledged appends took effect in round order (one
    # whose outcome was unknown may have taken effect late, after later rounds).
    position = {token: i for i, token in enumerate(stored)}
    order = [position[token] for token in summary.acked_appends]
    assert order == sorted(order), f"client {client}: appends out of order: {stored}"


async def raw_get(
    address: tuple[str, int], key: str, history: HistoryRecorder, timeout: float = 1.0
) -> None:
    """One Get asked of one server only (no clerk, no retry), recorded: ok with its value, else
    failed. It shows what that server itself answers, e.g. a deposed leader's stale state."""
    handle = history.call("raw", "get", key)
    channel = RpcChannel(*address, connect_timeout=timeout)
    try:
        reply = await channel.call(
            "kvServerRpc", "Get", GetArgs(Key=key.encode()), GetReply, timeout=timeout
        )
    except RpcError:
        history.ret(handle, status=Status.FAIL)
        return
    finally:
        await channel.close()
    if reply.Err == b"OK":
        history.ret(handle, reply.Value.decode())
    elif reply.Err == b"ErrNoKey":
        history.ret(handle, None)
    else:
        history.ret(handle, status=Status.FAIL)
