"""``raftkv server``: one node as a process, until SIGTERM/SIGINT or a fatal error.

Theory of operation
-------------------
The process runs :class:`kvserver.node.Node` on the loop :func:`rpc.loop.run` picks (uvloop where
installed). It ends in one of three ways: a signal (SIGTERM, SIGINT) stops the node cleanly
(stop accepting, in-flight calls finish or fail, storage closed) and exits 0; a fatal error in
the node's loop, or an exception no task handled, is logged and exits 1; with
``--exit-with-stdin`` the end of standard input is treated like SIGTERM, so a supervisor that
holds the other end of a pipe cannot leave its nodes orphaned even when it is killed with -9.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from clerk.admin import MembershipClient
from clerk.errors import OperationTimeoutError
from cli.common import EXIT_UNAVAILABLE, EXIT_USAGE
from kvapi.config import ConfigError, format_address, load_test_conf, parse_address
from kvapi.nodes import node_name, parse_node_index, raft_id
from kvserver.node import Node, NodeConfig
from kvserver.storage import DEFAULT_SEGMENT_BYTES
from raftcore.storage import StorageError
from rpc.loop import run

__all__ = [
    "EXIT_FATAL",
    "add_server_arguments",
    "node_config",
    "run_server",
    "serve",
    "stop_on_stdin_eof",
]

EXIT_FATAL = 1
_log = logging.getLogger("raftkv.server")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``raftkv server`` (``-f`` is the caller's)."""
    parser.add_argument(
        "--id",
        type=_node_index,
        required=True,
        metavar="I",
        help="this node: node<I> of test.conf (I or nodeI, from 0)",
    )
    parser.add_argument(
        "--join",
        action="store_true",
        help="this node was added with `raftkv member add`: a fresh data directory starts with "
        "no configuration and gets the log from the leader (-f only says where the cluster is)",
    )
    parser.add_argument(
        "--listen",
        type=_listen_address,
        metavar="HOST:PORT",
        help="where to listen (default: this node's address in its configuration or test.conf)",
    )
    parser.add_argument(
        "--force-new-cluster",
        action="store_true",
        help="quorum-loss recovery: make this node the only member of its cluster, keeping its "
        "data; add new members afterwards (docs/operations.md)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("raftkv-data"),
        help="the node keeps its files in DATA_DIR/node<I> (default ./raftkv-data)",
    )
    parser.add_argument(
        "--max-raft-state",
        type=int,
        default=4 << 20,
        help="snapshot when the log passes this many bytes (default 4 MiB; 0: never)",
    )
    parser.add_argument(
        "--segment-bytes",
        type=int,
        default=DEFAULT_SEGMENT_BYTES,
        help="start a new write-ahead-log segment file past this size (default 64 MiB)",
    )
    parser.add_argument("--tick-ms", type=float, default=10.0, help="Raft tick (default 10 ms)")
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="do not fdatasync the log (benchmarks only: a crash loses acknowledged writes)",
    )
    parser.add_argument(
        "--lease-reads",
        action="store_true",
        help="serve linearizable reads from the leader's lease instead of a heartbeat round "
        "(assumes bounded clock drift between nodes: see --lease-drift-margin)",
    )
    parser.add_argument(
        "--lease-drift-margin",
        type=float,
        default=0.1,
        metavar="FRACTION",
        help="with --lease-reads, make the lease this fraction shorter than the election "
        "timeout; safe while the nodes' monotonic clocks run at rates within this fraction of "
        "each other (default 0.1)",
    )
    # Tests only: scale this node's monotonic clock (a clock running fast or slow).
    parser.add_argument("--test-clock-rate", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="stop like on SIGTERM when standard input closes (used by raftCoreRun)",
    )


def _listen_address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _node_index(text: str) -> int:
    try:
        return parse_node_index(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def node_config(args: argparse.Namespace) -> NodeConfig:
    """The node's configuration from parsed arguments; ConfigError for a bad test.conf or id."""
    try:
        servers = load_test_conf(args.file)
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    data_dir = args.data_dir / f"node{args.id}"
    known = args.join or args.listen is not None or _holds_data(data_dir)
    if not 0 <= args.id < len(servers) and not known:
        raise ConfigError(
            f"--id {args.id}: {args.file} names node0..node{len(servers) - 1}, not node{args.id} "
            "(a node added with `raftkv member add` starts with --join --listen HOST:PORT)"
        )
    if args.join and args.force_new_cluster:
        raise ConfigError("--join and --force-new-cluster exclude each other")
    if args.max_raft_state < 0:
        raise ConfigError(f"--max-raft-state must not be negative, not {args.max_raft_state}")
    if args.segment_bytes <= 0:
        raise ConfigError(f"--segment-bytes must be positive, not {args.segment_bytes}")
    if args.tick_ms <= 0:
        raise ConfigError(f"--tick-ms must be positive, not {args.tick_ms}")
    if args.test_clock_rate <= 0:
        raise ConfigError(f"--test-clock-rate must be positive, not {args.test_clock_rate}")
    if not 0 <= args.lease_drift_margin < 1:
        raise ConfigError(f"--lease-drift-margin must be in [0, 1), not {args.lease_drift_margin}")
    return NodeConfig(
        node_id=raft_id(args.id),
        peers={raft_id(i): address for i, address in enumerate(servers)},
        data_dir=data_dir,
        tick_ms=args.tick_ms,
        max_raft_state=args.max_raft_state or None,
        fsync=not args.no_fsync,
        segment_bytes=args.segment_bytes,
        lease_reads=args.lease_reads,
        lease_drift_margin=args.lease_drift_margin,
        clock_rate=args.test_clock_rate,
        listen=args.listen,
        join=args.join,
        force_new_cluster=args.force_new_cluster,
    )


def _holds_data(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a node's files already (so its configuration is known)."""
    return data_dir.is_dir() and any(data_dir.iterdir())


def run_server(args: argparse.Namespace) -> int:
    """Run ``raftkv server`` with parsed arguments; return the exit code."""
    config = node_config(args)
    if config.join and not _holds_data(config.data_dir):
        # A fresh joining node: the cluster must know it, at this address, or it would wait
        # forever for a leader that never calls.
        checked = run(joined_address(config, args.file))
        if isinstance(checked, int):
            return checked
        listen, members = checked
        config = dataclasses.replace(config, listen=listen, peers=members)
    return run(serve(config, exit_with_stdin=args.exit_with_stdin))


async def joined_address(
    config: NodeConfig, conf_file: str, *, timeout: float = 10.0
) -> tuple[tuple[str, int], dict[int, tuple[str, int]]] | int:
    """Where the cluster expects the joining node (its address in the member list) and where
    the other members are (so it can answer the leader before its log names them). An exit
    code instead, the reason printed, when the cluster does not know the node (2), knows it at
    another address (2) or does not answer (3)."""
    name = node_name(config.node_id)
    async with MembershipClient(list(config.peers.values()), timeout=timeout) as client:
        try:
            listed = await client.members()
        except OperationTimeoutError as exc:
            print(f"raftkv: cannot join: no node of {conf_file} answered: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
    member = listed.find(config.node_id)
    if member is None or member.address is None:
        print(
            f"raftkv: cannot join: the cluster does not know {name} "
            "(add it first: raftkv member add HOST:PORT)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if config.listen is not None and member.address != config.listen:
        print(
            f"raftkv: cannot join: {name} was added at {format_address(member.address)}, "
            f"not at {format_address(config.listen)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    members = {m.raft_id: m.address for m in listed.members if m.address is not None}
    return member.address, members


async def serve(config: NodeConfig, *, exit_with_stdin: bool = False) -> int:
    """Start a node, serve until a signal (return 0) or a fatal error (return EXIT_FATAL)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    fatal: asyncio.Future[str] = loop.create_future()

    def on_loop_error(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        _log.critical("unhandled error: %s", context.get("message"), exc_info=exc)
        if not fatal.done():
            fatal.set_result(str(context.get("message")))

    loop.set_exception_handler(on_loop_error)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if exit_with_stdin:
        stop_on_stdin_eof(loop, stop)

    node = Node(config)
    # A restored map is millions of long-lived objects in no reference cycle: start (restore)
    # with the collector off and freeze what was loaded, so no later collection rescans it (a
    # full collection over 1M keys stalls the loop for about a second).
    gc.disable()
    try:
        await node.start()
    except OSError as exc:
        host, port = node.address
        _log.critical("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return EXIT_FATAL
    except ValueError as exc:  # nothing says where it listens, a removed node forced, ...
        _log.critical("%s", exc)
        return EXIT_FATAL
    except StorageError as exc:
        _log.critical("cannot open the data directory %s: %s", config.data_dir, exc)
        return EXIT_FATAL
    finally:
        gc.freeze()
        gc.enable()

    stopped = asyncio.ensure_future(node.wait_stopped())
    signalled = asyncio.ensure_future(stop.wait())
    waits: set[asyncio.Future[Any]] = {stopped, signalled, fatal}
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    if stopped.done():
        error = stopped.exception()
        if error is None:
            return 0  # removed from the cluster: said so already
        _log.critical("%s ended by a fatal error: %r", node_name(config.node_id), error)
        await node.stop()
        return EXIT_FATAL
    stopped.cancel()
    await node.stop()
    if fatal.done():
        _log.critical("%s stopped after an unhandled error", node_name(config.node_id))
        return EXIT_FATAL
    return 0


def stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when standard input reaches its end (the supervisor closed it or died)."""
    fd = sys.stdin.fileno()

    def on_readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, on_readable)
