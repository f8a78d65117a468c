"""A throwaway local cluster for ``raftkv bench --spawn N``: N node processes on free ports.

Nodes are started by :class:`cluster.processes.ProcCluster`: ``python -m cli.raftkv
server`` children, each in its own process group (a terminal's Ctrl-C reaches only the bench,
which then stops them in order) with ``--exit-with-stdin`` and a pipe from the bench on stdin, so
they stop by themselves even if the bench is killed outright.
Their data and test.conf live in a temporary directory removed afterwards, unless the caller
names a data directory, which is then kept. :meth:`SpawnedCluster.stop` terminates, then kills,
and reaps every node; it is idempotent and the context manager calls it on every exit path.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from cluster.processes import ProcCluster
from cluster.status import ClusterStartError, wait_for_leader

__all__ = ["SpawnedCluster"]

_LOG_TAIL_BYTES = 2000


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
        self._nodes: ProcCluster | None = None

    @property
    def conf(self) -> Path:
        """The test.conf naming the nodes."""
        return self.workdir / "test.conf"

    @property
    def servers(self) -> list[tuple[str, int]]:
        """The nodes' addresses, in test.conf order (empty before ``start``)."""
        return [] if self._nodes is None else self._nodes.servers

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        """The running node processes."""
        return [] if self._nodes is None else list(self._nodes.procs.values())

    def start(self) -> None:
        """Write test.conf and start every node (OSError if the directory is unusable)."""
        if self._given_dir is not None:
            self._given_dir.mkdir(parents=True, exist_ok=True)
            self.workdir = self._given_dir
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="raftkv-bench-"))
        extra = ([] if self.fsync else ["--no-fsync"]) + (
            ["--lease-reads"] if self.lease_reads else []
        )
        self._nodes = ProcCluster(self.workdir, self.n, log_level="WARNING", extra_args=extra)
        self._nodes.start_all()

    async def wait_leader(self, timeout: float) -> tuple[int, int]:
        """(node index, term) of the first leader; ClusterStartError (with the nodes' logs) if a
        node exits or none is elected within ``timeout`` seconds."""
        try:
            leader = await wait_for_leader(self.servers, timeout, alive=self.procs, interval=0.05)
        except ClusterStartError as exc:
            raise ClusterStartError(f"{exc}\n{self.log_tails()}") from None
        if leader is None:
            raise ClusterStartError(f"no leader within {timeout:g} s\n{self.log_tails()}")
        return leader

    def log_tails(self) -> str:
        """The end of every node's log, for an error message."""
        parts = []
        nodes = self._nodes
        for i in range(0 if nodes is None else nodes.n):
            with contextlib.suppress(OSError):
                assert nodes is not None
                text = nodes.log(i)[-_LOG_TAIL_BYTES:]
                if text.strip():
                    parts.append(f"--- node{i} log ---\n{text}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop and reap every node; remove the temporary directory (a given one is kept)."""
        nodes, self._nodes = self._nodes, None
        if nodes is not None:
            nodes.close()
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
