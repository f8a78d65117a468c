"""Real raftkv node processes on 127.0.0.1, for the integration tests and the benchmarks.

Each node is a ``python -m kvserver.cli server`` child in its own process group, its output in
``<workdir>/node<i>.log``. Nodes run with ``--exit-with-stdin``: they hold a pipe from the
parent and stop when it closes, so even a parent killed outright leaves no node behind.
:meth:`ProcCluster.close` (call it on every exit path) terminates, then kills, and reaps every
node this cluster ever started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from clerk import AsyncClerk
from kvserver.cli_run import format_test_conf, free_ports, stop_children
from kvserver.cli_status import NodeStatus, StatusPoller

__all__ = ["ProcCluster", "child_env"]

# The directory holding the kvserver package: the checkout, when running from one.
_PROJECT_ROOT = Path(__file__).resolve().parents[1]
_STOP_GRACE_S = 5.0


def child_env() -> dict[str, str]:
    """The environment for a child Python that imports the project the parent imports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


class ProcCluster:
    """N node processes sharing one test.conf in ``workdir``; node i is Raft id i + 1."""

    def __init__(
        self,
        workdir: Path,
        n: int,
        *,
        max_raft_state: int | None = None,
        log_level: str = "INFO",
        extra_args: Sequence[str] = (),
        node_args: Mapping[int, Sequence[str]] | None = None,
        servers: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        """Write ``test.conf`` in ``workdir`` naming ``servers`` (default: free ports on 127.0.0.1);
        ``extra_args`` go to every ``raftkv server`` (e.g. ``--no-fsync``), ``node_args[i]`` to
        node i's only."""
        self.workdir = workdir
        self.n = n
        self.max_raft_state = max_raft_state
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.node_args = {i: list(args) for i, args in (node_args or {}).items()}
        self.servers = (
            [("127.0.0.1", port) for port in free_ports(n)] if servers is None else list(servers)
        )
        self.conf = workdir / "test.conf"
        self.conf.write_text(format_test_conf(self.servers), encoding="utf-8")
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._all: list[subprocess.Popen[bytes]] = []

    def command(self, i: int) -> list[str]:
        """The command line that runs node i (a subclass may wrap it, e.g. in a namespace)."""
        command = [sys.executable, "-m", "kvserver.cli", "server", "--id", str(i)]
        command += ["-f", str(self.conf), "--data-dir", str(self.workdir / "data")]
        command += ["--exit-with-stdin", "--log-level", self.log_level]
        if self.max_raft_state is not None:
            command += ["--max-raft-state", str(self.max_raft_state)]
        return command + self.extra_args + self.node_args.get(i, [])

    def start(self, i: int) -> None:
        """Start node i (again, after it was killed: same data directory, same port)."""
        command = self.command(i)
        with open(self.workdir / f"node{i}.log", "ab") as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
                process_group=0,
            )
        self.procs[i] = proc
        self._all.append(proc)

    def start_all(self) -> None:
        """Start every node."""
        for i in range(self.n):
            self.start(i)

    def signal(self, i: int, sig: signal.Signals) -> None:
        """Send ``sig`` to node i."""
        self.procs[i].send_signal(sig)

    def stop(self, i: int) -> None:
        """SIGTERM node i and reap it (SIGKILL after a grace period)."""
        stop_children([self.procs.pop(i)], _STOP_GRACE_S)

    def check_alive(self) -> None:
        """Raise RuntimeError, with the end of its log, if a started node has exited."""
        for i, proc in self.procs.items():
            if proc.poll() is not None:
                tail = self.log(i)[-2000:]
                raise RuntimeError(f"node{i} exited with code {proc.returncode}:\n{tail}")

    def kill(self, i: int) -> None:
        """kill -9 node i and reap it."""
        proc = self.procs.pop(i)
        proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()

    def log(self, i: int) -> str:
        """Everything node i has logged so far (all its runs)."""
        return (self.workdir / f"node{i}.log").read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        """Stop every node this cluster ever started (SIGCONT first, for a stopped one)."""
        for proc in self._all:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        stop_children(self._all, grace=_STOP_GRACE_S)

    async def statuses(self, timeout: float = 0.5) -> list[NodeStatus]:
        """Every node's status now (unreachable nodes included, with reply None)."""
        poller = StatusPoller(self.servers, timeout=timeout)
        try:
            return await poller.poll()
        finally:
            await poller.close()

    async def wait_leader(
        self, *, among: set[int] | None = None, above_term: int = 0, timeout: float = 10.0
    ) -> tuple[int, int]:
        """(index, term) of a leader among ``among`` in a term above ``above_term``."""
        among = set(range(self.n)) if among is None else among
        poller = StatusPoller(self.servers, timeout=0.3)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for s in await poller.poll():
                        r = s.reply
                        if r and s.index in among and r.Role == b"leader" and r.Term > above_term:
                            return s.index, r.Term
                    await asyncio.sleep(0.02)
        finally:
            await poller.close()

    def clerk(self, **options: object) -> AsyncClerk:
        """A client of this cluster (on the running loop)."""
        return AsyncClerk(self.servers, **options)  # type: ignore[arg-type]
