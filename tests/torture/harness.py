"""The torture tier's cluster: nodes in network namespaces, a client load, faults, and checks.

Theory of operation
-------------------
:class:`Torture` owns one :class:`netns.Network`, a :class:`NetnsCluster` of ``raftkv server``
processes started inside its namespaces with ``ip netns exec`` (which execs, so the pid is the
node's and ``--exit-with-stdin`` still ties the node to this process), optionally a
:class:`DelayProxy` every node-to-node connection goes through, and a
:class:`workload.ClientLoad` (the integration tests' recorded load clients, in the root
namespace). A scenario injects faults through it; each fault is written to a timeline (with the
seed) that a failure prints. :meth:`Torture.finish` heals everything and checks:

1. a leader is elected and every client gets writes acknowledged after the heal;
2. every node applies everything the leader had committed at the heal (no node is left behind);
3. every acknowledged write is in the store, appends exactly once and in order;
4. the merged history (load clients, checking reads, and the test's own reads asked of single
   nodes, e.g. an isolated leader) is linearizable (a client's own append log with an append of
   unknown outcome is judged by its exact order rule instead, see ``_check_append_logs``); it
   is kept as ``history.jsonl`` beside the logs (``python -m lincheck`` re-checks it).

:meth:`Torture.close` (the fixture calls it on every exit path) stops every process, then
deletes the namespaces.
"""

from __future__ import annotations

import asyncio
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from load_client import Summary, log_key
from netns import Network, run_prefix
from workload import SHARED_KEYS, ClientLoad, raw_get

from cluster.processes import ProcCluster, child_env
from lincheck import HistoryRecorder, Operation, OpKind, Status, write_history

__all__ = ["NODE_PORT", "DelayProxy", "NetnsCluster", "Torture", "check_single_writer_log"]

# Every node has a namespace of its own, where nothing else listens: one fixed port is free.
NODE_PORT = 7100
_PROXY_PORT_BASE = 20000
DELAY_PROXY = Path(__file__).resolve().parent / "delay_proxy.py"
ELECTION_BOUND_S = 5.0
HEAL_BOUND_S = 20.0
KNOWN_FRAME_BUG = "exceeds the limit of"
# The checker's budget grows with the history, so a long campaign is judged, not timed out.
LINCHECK_BUDGET_S = 20.0
LINCHECK_OPS_PER_S = 500.0
LINCHECK_MEMORY = 4 << 30


class NetnsCluster(ProcCluster):
    """A :class:`ProcCluster` whose node i runs in ``net``'s namespace i, at its address."""

    def __init__(
        self, workdir: Path, net: Network, *, lease_reads: bool, log_level: str = "INFO"
    ) -> None:
        extra = ["--lease-reads"] if lease_reads else []
        servers = [(host, NODE_PORT) for host in net.hosts]
        super().__init__(workdir, net.n, servers=servers, extra_args=extra, log_level=log_level)
        self.net = net

    def command(self, i: int) -> list[str]:
        return [*self.net.exec_prefix(i), *super().command(i)]


class DelayProxy:
    """``delay_proxy.py`` in the bridge namespace, carrying every node-to-node connection."""

    def __init__(self, workdir: Path, net: Network) -> None:
        self.ports = {
            (i, j): _PROXY_PORT_BASE + i * net.n + j
            for i in range(net.n)
            for j in range(net.n)
            if i != j
        }
        command = ["ip", "netns", "exec", net.bridge_ns, sys.executable, str(DELAY_PROXY)]
        command += ["--listen", net.bridge_host]
        for (_, j), port in self.ports.items():
            command += ["--route", f"{port}={net.hosts[j]}:{NODE_PORT}"]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(workdir / "proxy.log", "ab"),  # noqa: SIM115 (the child holds it)
            env=child_env(),
            process_group=0,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"listening":
            self.close()
            raise RuntimeError(f"the delay proxy did not start: {line!r}")
        net.route_peers_through(NODE_PORT, self.ports)

    def set(self, delay_ms: float, jitter_ms: float = 0.0) -> None:
        """Delay every chunk from now on by ``delay_ms`` plus up to ``jitter_ms``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{delay_ms} {jitter_ms}\n".encode())
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def check_single_writer_log(summary: Summary, stored: list[str]) -> None:
    """The exact linearizability rule for a client's own append log, read once at the end:
    each token at most once and only attempted ones, every acknowledged one there, and an
    acknowledged round before every later round's token (rounds run one after another, so a
    round's append was called after every earlier acknowledged one returned; an unknown one may
    land late, never early)."""
    client = summary.client
    assert len(stored) == len(set(stored)), f"client {client}: an append applied twice: {stored}"
    attempted = set(summary.acked_appends) | set(summary.unknown_appends)
    invented = [token for token in stored if token not in attempted]
    assert not invented, f"client {client}: appends nobody made: {invented}"
    missing = [token for token in summary.acked_appends if token not in stored]
    assert not missing, f"client {client}: acknowledged appends {missing} lost"
    position = {int(token): i for i, token in enumerate(stored)}
    for acked in map(int, summary.acked_appends):
        early = [t for t, i in position.items() if t > acked and i < position[acked]]
        assert not early, f"client {client}: rounds {early} applied before round {acked}"


class Torture:
    """One torture run: network, nodes, load, faults and their timeline (module docstring)."""

    _networks = 0

    def __init__(
        self, workdir: Path, n: int, *, lease_reads: bool, seed: int, delay_proxy: bool = False
    ) -> None:
        self.workdir = workdir
        self.seed = seed
        self.rng = random.Random(seed)
        self.timeline: list[str] = []
        self._t0 = time.monotonic()
        self.raw = HistoryRecorder()
        self.stopped: set[int] = set()
        self.killed: set[int] = set()
        self.loads: list[ClientLoad] = []
        self.proxy: DelayProxy | None = None
        self.cluster: NetnsCluster | None = None
        Torture._networks += 1
        self.net = Network(f"{run_prefix()}{Torture._networks}", n, self.rng)
        try:
            self.note(
                f"seed {seed}, {n} nodes, lease_reads={lease_reads}, subnet {self.net.subnet}"
            )
            if delay_proxy:
                self.proxy = DelayProxy(workdir, self.net)
            self.cluster = NetnsCluster(workdir, self.net, lease_reads=lease_reads)
            self.cluster.start_all()
        except BaseException:
            self.close()
            raise

    @property
    def nodes(self) -> NetnsCluster:
        assert self.cluster is not None
        return self.cluster

    def note(self, event: str) -> None:
        """Add an event to the timeline (also written to ``faults.log``)."""
        line = f"{time.monotonic() - self._t0:7.2f}s {event}"
        self.timeline.append(line)
        with open(self.workdir / "faults.log", "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def describe(self) -> str:
        """The seed and the timeline, for a failure message."""
        return "\n".join([f"torture seed {self.seed}; timeline:", *self.timeline])

    @property
    def load(self) -> ClientLoad:
        """The load clients of the current epoch."""
        assert self.loads, "start_load() first"
        return self.loads[-1]

    async def start_load(self, clients: int = 3, op_timeout: float = 2.0) -> ClientLoad:
        """Wait for a leader, then start the load clients and wait until each is running.

        Called again, it stops the running clients and starts an epoch of fresh ones, with keys
        of their own: the checker's cost for one client's append key grows faster than its
        length (a 120 s campaign's took over 20 GB), so a long campaign keeps each one short.
        """
        if self.loads:
            self.load.stop()
            self.note("load stopped")
        await self.nodes.wait_leader(timeout=30)
        load = ClientLoad(self.nodes, clients, op_timeout=op_timeout)
        if self.loads:
            load.names = [f"e{len(self.loads)}.{name}" for name in load.names]
        self.loads.append(load)
        load.start()
        await load.wait_running(timeout=30)
        self.note(f"load epoch {len(self.loads) - 1} running")
        return load

    async def leader(self, among: set[int] | None = None, above_term: int = 0) -> tuple[int, int]:
        """The leader (index, term), within the election bound."""
        return await self.nodes.wait_leader(
            among=among, above_term=above_term, timeout=ELECTION_BOUND_S
        )

    # Faults, each noted on the timeline -----------------------------------------------------

    def partition(self, groups: Sequence[set[int]]) -> None:
        self.note(f"partition {' | '.join(str(sorted(g)) for g in groups)}")
        self.net.partition(groups)

    def cut(self, pairs: Sequence[tuple[int, int]]) -> None:
        self.note(f"cut links {sorted(pairs)}")
        self.net.cut(pairs)

    def loss(self, peer_percent: int, client_percent: int = 0) -> None:
        self.note(f"loss {peer_percent}% between nodes, {client_percent}% from clients")
        self.net.loss(peer_percent, client_percent)

    def delay(self, delay_ms: float, jitter_ms: float = 0.0) -> None:
        assert self.proxy is not None, "start the Torture with delay_proxy=True"
        self.note(f"delay {delay_ms} ms + up to {jitter_ms} ms between nodes")
        self.proxy.set(delay_ms, jitter_ms)

    def heal_network(self) -> None:
        self.note("heal the network")
        self.net.heal()

    def kill(self, i: int) -> None:
        self.note(f"kill -9 node{i}")
        self.nodes.kill(i)
        self.killed.add(i)

    def restart(self, i: int) -> None:
        self.note(f"restart node{i}")
        self.nodes.start(i)
        self.killed.discard(i)

    def pause(self, i: int) -> None:
        self.note(f"SIGSTOP node{i}")
        self.nodes.signal(i, signal.SIGSTOP)
        self.stopped.add(i)

    def resume(self, i: int) -> None:
        self.note(f"SIGCONT node{i}")
        self.nodes.signal(i, signal.SIGCONT)
        self.stopped.discard(i)

    async def read_from(self, i: int, duration: float, every: float = 0.05) -> None:
        """Ask node i alone for the shared keys for ``duration`` seconds (recorded)."""
        end = time.monotonic() + duration
        while time.monotonic() < end:
            address = self.nodes.servers[i]
            await asyncio.gather(
                *(raw_get(address, key, self.raw, timeout=0.5) for key in SHARED_KEYS)
            )
            await asyncio.sleep(every)

    def acked_between(self, start_ns: int, end_ns: int) -> int:
        """The load's writes called and acknowledged within [start_ns, end_ns] (its history is
        read when it stops)."""
        return sum(
            op.status is Status.OK
            and op.op is not OpKind.GET
            and start_ns <= op.call
            and op.ret is not None
            and op.ret <= end_ns
            for load in self.loads
            for op in load.history
        )

    # The checks ------------------------------------------------------------------------------

    async def finish(self, progress_windows: Sequence[tuple[str, int, int]] = ()) -> None:
        """Heal everything, then the checks of the module docstring; ``progress_windows``
        (name, start_ns, end_ns) must each hold an acknowledged write."""
        self.heal_network()
        if self.proxy is not None:
            self.delay(0, 0)
        for i in sorted(self.stopped):
            self.resume(i)
        for i in sorted(self.killed):
            self.restart(i)
        healed_ns = time.monotonic_ns()
        await self.nodes.wait_leader(timeout=HEAL_BOUND_S)
        await asyncio.sleep(1.5)
        commit = await self._leader_commit()
        self.note(f"leader commit {commit} after the heal")
        await self._converge(commit)
        frame_errors = self.known_frame_bug()
        if frame_errors:  # issue 14 item 5; the checks below still apply
            self.note(f"{len(frame_errors)} oversize-frame errors, e.g. {frame_errors[0]}")
        self.load.stop()
        self.note("load stopped")
        progressing = self.load.clients_progressing_after(healed_ns)
        assert progressing == self.load.client_ids(), (
            f"clients {sorted(self.load.client_ids() - progressing)} got no write acknowledged "
            f"after the heal\n{self.describe()}"
        )
        for name, start_ns, end_ns in progress_windows:
            assert self.acked_between(start_ns, end_ns), (
                f"no write acknowledged during {name}\n{self.describe()}"
            )
        operations = [*self.raw.history()]
        for load in self.loads:
            await load.verify()
            operations += [*load.history, *load.checks.history()]
        operations = await self._check_append_logs(operations)
        acknowledged = sum(load.acknowledged_writes() for load in self.loads)
        started = time.monotonic()
        verdict = self._check_linearizable(operations)
        self.note(
            f"checked: {acknowledged} acknowledged writes; {verdict} "
            f"({time.monotonic() - started:.1f} s)"
        )

    async def _check_append_logs(self, operations: list[Operation]) -> list[Operation]:
        """Check every client's append log (``log.<client>``: one writer, rounds in sequence)
        with :func:`check_single_writer_log`; return ``operations`` without the logs that had
        an append of unknown outcome. lincheck's search is cubic in such a log's length (a
        20 s log of 1.4k appends with one unknown one exhausted 3 GB), and for one writer the
        order rule is the exact linearizability condition."""
        unknown_keys = {op.key for op in operations if op.status is Status.UNKNOWN}
        async with self.nodes.clerk(op_timeout=20.0) as kv:
            for load in self.loads:
                for summary in load.summaries:
                    value = (await kv.get(log_key(summary.client)) or b"").decode()
                    check_single_writer_log(summary, value.split(",")[:-1])
        skipped = {log_key(s.client) for load in self.loads for s in load.summaries}
        skipped &= unknown_keys
        if skipped:
            self.note(f"append logs checked by their order rule only: {sorted(skipped)}")
        return [op for op in operations if op.key not in skipped]

    def _check_linearizable(self, operations: list[Operation]) -> str:
        """lincheck on ``operations`` (kept as ``history.jsonl``), in a child process whose
        memory is capped, so a history too hard for the checker fails this test rather than
        the machine; returns the checker's verdict line."""
        history = self.workdir / "history.jsonl"
        write_history(history, operations)
        budget = max(LINCHECK_BUDGET_S, len(operations) / LINCHECK_OPS_PER_S)
        command = [sys.executable, "-m", "lincheck", str(history), "--timeout", str(budget)]
        command += ["--witness", str(self.workdir / "not-linearizable")]

        def cap_memory() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (LINCHECK_MEMORY, LINCHECK_MEMORY))

        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=child_env(),
            preexec_fn=cap_memory,
            timeout=budget + 60,
            check=False,
        )
        output = (done.stdout + done.stderr).strip()
        assert done.returncode == 0, (
            f"lincheck exited {done.returncode} on {history}:\n{output[-3000:]}\n{self.describe()}"
        )
        return output.splitlines()[0]

    async def _leader_commit(self) -> int:
        for status in await self.nodes.statuses():
            reply = status.reply
            if reply is not None and reply.Role == b"leader":
                return int(reply.Commit)
        raise AssertionError(f"no leader answers its status\n{self.describe()}")

    async def _converge(self, commit: int) -> None:
        """Every node applies up to ``commit`` within the heal bound."""
        deadline = time.monotonic() + HEAL_BOUND_S
        while True:
            behind = {
                s.index: (None if s.reply is None else int(s.reply.Applied))
                for s in await self.nodes.statuses()
                if s.reply is None or s.reply.Applied < commit
            }
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"nodes still behind commit {commit} {HEAL_BOUND_S} s after the heal "
                    f"(index: applied) {behind}\n{self.describe()}"
                )
            await asyncio.sleep(0.1)

    def known_frame_bug(self) -> list[str]:
        """The nodes' log lines that show issue 14's unbounded peer queue (item 5)."""
        return [
            line
            for i in range(self.net.n)
            for line in self.nodes.log(i).splitlines()
            if KNOWN_FRAME_BUG in line
        ]

    def close(self) -> None:
        """Stop every process, then delete the namespaces (on every exit path)."""
        try:
            for load in self.loads:
                load.close()
            if self.cluster is not None:
                self.cluster.close()
            if self.proxy is not None:
                self.proxy.close()
        finally:
            self.net.close()
