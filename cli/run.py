"""``raftCoreRun``: start a local cluster of N ``raftkv server`` processes and supervise them.

Theory of operation
-------------------
It writes ``test.conf`` in the original's format with N free ports the OS hands out (all held at
once, so they differ, then released for the nodes to bind), starts one child per node in its own
process group, and then loops: reap children that died (reported with their exit code or
signal), ask every node for its status and print the leader and term whenever they change.

Unlike the original, no node outlives the supervisor. Ctrl-C or SIGTERM stops every child:
SIGTERM first (a node then stops cleanly), SIGKILL for any still running after a grace period,
and every child is waited for, so none is left a zombie. Children run in their own process group
so a terminal's Ctrl-C reaches only the supervisor, which then stops them in that order. Each
child reads a pipe from the supervisor on standard input and stops when it closes, which covers
a supervisor killed with SIGKILL too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cli.common import EXIT_USAGE, configure_logging
from cluster.conf import format_test_conf, free_ports
from cluster.processes import STOP_GRACE_S, child_env, server_command, stop_children
from cluster.status import StatusPoller, leader_of, reported_leader
from rpc.loop import run

__all__ = ["main"]

POLL_INTERVAL_S = 0.2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftCoreRun",
        description="Start N raftkv nodes on 127.0.0.1 and supervise them until Ctrl-C.",
    )
    parser.add_argument("-n", type=int, required=True, help="number of nodes")
    parser.add_argument("-f", "--file", default="test.conf", help="test.conf to (re)write")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("raftkv-data"),
        help="node i keeps its files in DATA_DIR/node<i> (default ./raftkv-data)",
    )
    parser.add_argument("--fresh", action="store_true", help="wipe the nodes' data first")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="the nodes' log level (default INFO)",
    )
    parser.add_argument(
        "--max-raft-state",
        type=int,
        default=None,
        help="passed to every node: snapshot when the log passes this many bytes",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``raftCoreRun`` with ``argv`` (default sys.argv[1:]); return the exit code."""
    args = _parser().parse_args(argv)
    configure_logging("WARNING")
    if args.n < 1:
        print(f"raftCoreRun: -n must be at least 1, not {args.n}", file=sys.stderr)
        return EXIT_USAGE
    servers = [("127.0.0.1", port) for port in free_ports(args.n)]
    try:
        Path(args.file).write_text(format_test_conf(servers), encoding="utf-8")
        if args.fresh:
            for i in range(args.n):
                shutil.rmtree(args.data_dir / f"node{i}", ignore_errors=True)
        args.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"raftCoreRun: {exc}", file=sys.stderr)
        return EXIT_USAGE
    commands = [
        server_command(
            i,
            args.file,
            args.data_dir,
            log_level=args.log_level,
            max_raft_state=args.max_raft_state,
        )
        for i in range(args.n)
    ]
    _say(f"wrote {args.file}; node i keeps its data in {args.data_dir}/node<i>")
    return run(_supervise(commands, servers))


def _say(line: str) -> None:
    print(f"raftCoreRun: {line}", flush=True)


async def _supervise(commands: list[list[str]], servers: list[tuple[str, int]]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    env = child_env()
    children: list[subprocess.Popen[bytes]] = []
    poller = StatusPoller(servers, timeout=0.5)
    try:
        for i, command in enumerate(commands):
            child = subprocess.Popen(command, stdin=subprocess.PIPE, env=env, process_group=0)
            children.append(child)
            host, port = servers[i]
            _say(f"node{i} (pid {child.pid}) serving on {host}:{port}")
        return await _watch(children, poller, stop)
    finally:
        await poller.close()
        stop_children(children, STOP_GRACE_S)
        _say(f"stopped {len(children)} nodes")


async def _watch(
    children: list[subprocess.Popen[bytes]], poller: StatusPoller, stop: asyncio.Event
) -> int:
    live = set(range(len(children)))
    shown: tuple[int, int] | str | None = "nothing yet"
    while not stop.is_set():
        for i in sorted(live):
            code = children[i].poll()
            if code is not None:
                live.discard(i)
                _say(f"node{i} (pid {children[i].pid}) {_describe_exit(code)}")
        if not live:
            _say("every node has exited")
            return 1
        statuses = await poller.poll()
        # A node added since (raftkv member add) may lead: the others still name it.
        leader = leader_of(statuses) or reported_leader(statuses)
        if leader != shown:
            shown = leader
            if leader is None:
                _say("no leader")
            else:
                _say(f"leader is node{leader[0]} in term {leader[1]}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_INTERVAL_S)
    return 0


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


if __name__ == "__main__":
    sys.exit(main())
