"""Real raftkv node processes on 127.0.0.1, for the integration tests and the benchmarks.

Each node is a ``python -m cli.raftkv server`` child in its own process group, its output in
``<workdir>/node<i>.log``. Nodes run with ``--exit-with-stdin``: they hold a pipe from the
parent and stop when it closes, so even a parent killed outright leaves no node behind.
:meth:`ProcCluster.close` (call it on every exit path) terminates, then kills, and reaps every
node this cluster ever started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from clerk import AsyncClerk
from cluster.conf import format_test_conf, free_ports
from cluster.status import NodeStatus, StatusPoller, wait_for_leader
from kvapi.config import format_address

__all__ = ["STOP_GRACE_S", "ProcCluster", "child_env", "server_command", "stop_children"]

# The directory holding the kvserver package: the checkout, when running from one.
_PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: How long a stopped node (or worker) gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 5.0


def child_env() -> dict[str, str]:
    """The environment for a child Python that imports the project the parent imports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def server_command(
    index: int,
    conf: Path,
    data_dir: Path,
    *,
    log_level: str,
    max_raft_state: int | None = None,
) -> list[str]:
    """The command line that runs ``node<index>`` of the cluster ``conf`` describes as a child
    that exits when its stdin closes (``--exit-with-stdin``)."""
    command = [sys.executable, "-m", "cli.raftkv", "server", "--id", str(index)]
    command += ["-f", str(conf), "--data-dir", str(data_dir)]
    command += ["--log-level", log_level, "--exit-with-stdin"]
    if max_raft_state is not None:
        command += ["--max-raft-state", str(max_raft_state)]
    return command


def stop_children(children: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM every live child, SIGKILL those still running after ``grace`` s; reap all."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdin is not None:
            child.stdin.close()


class ProcCluster:
    """N node processes sharing one test.conf in ``workdir``; node i is Raft id i + 1.

    Nodes added later with ``raftkv member add`` are started with :meth:`join`; they are
    not in test.conf, and :attr:`addresses` names every node, theirs too."""

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
        self.joined: dict[int, tuple[str, int]] = {}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._all: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> dict[int, tuple[str, int]]:
        """Every node's address by index: test.conf's, then the joined ones'."""
        return {**dict(enumerate(self.servers)), **self.joined}

    def command(self, i: int) -> list[str]:
        """The command line that runs node i (a subclass may wrap it, e.g. in a namespace)."""
        command = server_command(
            i,
            self.conf,
            self.workdir / "data",
            log_level=self.log_level,
            max_raft_state=self.max_raft_state,
        )
        if i in self.joined:
            command += ["--join", "--listen", format_address(self.joined[i])]
        return command + self.extra_args + self.node_args.get(i, [])

    def start(self, i: int, once: Sequence[str] = ()) -> None:
        """Start node i (again, after it was killed: same data directory, same port); ``once``
        are more arguments for this run only (e.g. ``--force-new-cluster``)."""
        command = self.command(i) + list(once)
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
        """Start every node of test.conf."""
        for i in range(self.n):
            self.start(i)

    def join(self, i: int, address: tuple[str, int]) -> None:
        """Start node i, which ``raftkv member add`` added at ``address``, as a joining node
        (``--join --listen``); :meth:`start` restarts it the same way."""
        self.joined[i] = address
        self.start(i)

    def signal(self, i: int, sig: signal.Signals) -> None:
        """Send ``sig`` to node i."""
        self.procs[i].send_signal(sig)

    def stop(self, i: int) -> None:
        """SIGTERM node i and reap it (SIGKILL after a grace period)."""
        stop_children([self.procs.pop(i)], STOP_GRACE_S)

    def check_alive(self) -> None:
        """Raise RuntimeError, with the end of its log, if a started node has exited."""
        for i, proc in self.procs.items():
            if proc.poll() is not None:
                tail = self.log(i)[-2000:]
                raise RuntimeError(f"node{i} exited with code {proc.returncode}:\n{tail}")

    def wait(self, i: int, timeout: float) -> int:
        """Wait up to ``timeout`` s for node i to exit by itself (subprocess.TimeoutExpired if
        it does not), reap it; its exit code."""
        code = self.procs[i].wait(timeout=timeout)
        self.procs.pop(i)
        return code

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
        stop_children(self._all, grace=STOP_GRACE_S)

    async def statuses(self, timeout: float = 0.5) -> list[NodeStatus]:
        """Every node's status now, in index order (unreachable nodes included, with reply
        None)."""
        poller = StatusPoller(self.addresses, timeout=timeout)
        try:
            return await poller.poll()
        finally:
            await poller.close()

    async def wait_leader(
        self, *, among: set[int] | None = None, above_term: int = 0, timeout: float = 10.0
    ) -> tuple[int, int]:
        """(index, term) of a leader among ``among`` in a term above ``above_term``;
        TimeoutError if none within ``timeout`` seconds."""
        leader = await wait_for_leader(self.addresses, timeout, among=among, above_term=above_term)
        if leader is None:
            raise TimeoutError(f"no leader within {timeout:g} s")
        return leader

    def clerk(self, **options: object) -> AsyncClerk:
        """A client of this cluster (on the running loop)."""
        return AsyncClerk(self.servers, **options)  # type: ignore[arg-type]
