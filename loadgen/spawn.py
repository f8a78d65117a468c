"""A throwaway local cluster for ``raftkv bench --spawn N``: N node processes on free ports.

Nodes are ``python -m kvserver.cli server`` children, each in its own process group (a terminal's
Ctrl-C reaches only the bench, which then stops them in order) with ``--exit-with-stdin`` and a
pipe from the bench on stdin, so they stop by themselves even if the bench is killed outright.
Their data and test.conf live in a temporary directory removed afterwards, unless the caller
names a data directory, which is then kept. :meth:`SpawnedCluster.stop` terminates, then kills,
and reaps every node; it is idempotent and the context manager calls it on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from kvserver.cli_run import format_test_conf, free_ports, stop_children
from kvserver.cli_status import StatusPoller, leader_of
from kvserver.node_processes import child_env

__all__ = ["ClusterStartError", "SpawnedCluster", "wait_for_leader"]

STOP_GRACE_S = 5.0
_LOG_TAIL_BYTES = 2000


class ClusterStartError(RuntimeError):
    """The spawned cluster did not come up (a node exited, or no leader in time)."""


async def wait_for_leader(
    servers: list[tuple[str, int]],
    timeout: float,
    alive: Sequence[subprocess.Popen[bytes]] = (),
) -> tuple[int, int] | None:
    """(node index, term) of the leader once one is elected, None if none within ``timeout``.

    Raises ClusterStartError as soon as one of the ``alive`` processes has exited.
    """
    poller = StatusPoller(servers, timeout=0.3)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            for i, proc in enumerate(alive):
                if proc.poll() is not None:
                    raise ClusterStartError(f"node{i} exited with code {proc.returncode}")
            leader = leader_of(await poller.poll())
            if leader is not None:
                return leader
            await asyncio.sleep(0.05)
        return None
    finally:
        await poller.close()


class SpawnedCluster:
    """``n`` nodes on 127.0.0.1; ``servers`` and ``conf`` (the test.conf) once started."""

    def __init__(
        self,
        n: int,
        *,
        data_dir: Path | None = None,
        fsync: bool = True,
        lease_reads: bool = False,
    ) -> None:
        self.n = n
        self.fsync = fsync
        self.lease_reads = lease_reads
        self._keep = data_dir is not None
        self._given_dir = data_dir
        self.workdir = Path()
        self.servers: list[tuple[str, int]] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def conf(self) -> Path:
        """The test.conf naming the nodes."""
        return self.workdir / "test.conf"

    def start(self) -> None:
        """Write test.conf and start every node (OSError if the directory is unusable)."""
        if self._given_dir is not None:
            self._given_dir.mkdir(parents=True, exist_ok=True)
            self.workdir = self._given_dir
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="raftkv-bench-"))
        self.servers = [("127.0.0.1", port) for port in free_ports(self.n)]
        self.conf.write_text(format_test_conf(self.servers), encoding="utf-8")
        env = child_env()
        for i in range(self.n):
            command = [sys.executable, "-m", "kvserver.cli", "server", "--id", str(i)]
            command += ["-f", str(self.conf), "--data-dir", str(self.workdir / "data")]
            command += ["--exit-with-stdin", "--log-level", "WARNING"]
            if not self.fsync:
                command.append("--no-fsync")
            if self.lease_reads:
                command.append("--lease-reads")
            with open(self.workdir / f"node{i}.log", "ab") as log:
                self.procs.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        process_group=0,
                    )
                )

    async def wait_leader(self, timeout: float) -> tuple[int, int]:
        """(node index, term) of the first leader; ClusterStartError (with the nodes' logs) if a
        node exits or none is elected within ``timeout`` seconds."""
        try:
            leader = await wait_for_leader(self.servers, timeout, self.procs)
        except ClusterStartError as exc:
            raise ClusterStartError(f"{exc}\n{self.log_tails()}") from None
        if leader is None:
            raise ClusterStartError(f"no leader within {timeout:g} s\n{self.log_tails()}")
        return leader

    def log_tails(self) -> str:
        """The end of every node's log, for an error message."""
        parts = []
        for i in range(len(self.procs)):
            with contextlib.suppress(OSError):
                text = (self.workdir / f"node{i}.log").read_bytes()[-_LOG_TAIL_BYTES:]
                if text.strip():
                    parts.append(f"--- node{i} log ---\n{text.decode(errors='replace')}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop and reap every node; remove the temporary directory (a given one is kept)."""
        procs, self.procs = self.procs, []
        stop_children(procs, STOP_GRACE_S)
        if not self._keep and self.workdir != Path():
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = Path()

    def __enter__(self) -> SpawnedCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
