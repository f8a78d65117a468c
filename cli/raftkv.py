"""``raftkv``: run a node (``raftkv server``), read and write keys, and show the cluster's state.

Exit codes, for scripts:

- 0: done (``get`` printed the value; ``status``: some node is leader);
- 1: the key was not found (get, delete), the condition failed (cas), or the cluster refused a
  membership change (``member``, ``transfer-leader``: see :mod:`cli.members`);
- 2: usage or configuration error (bad arguments, unreadable or invalid test.conf);
- 3: the cluster is unavailable: no answer before the deadline (a write's outcome is then
  unknown), or ``status`` found no leader.

``raftkv server`` exits 0 after SIGTERM/SIGINT and 1 on a fatal error. Values are printed as
UTF-8 (undecodable bytes escaped); ``scan`` prints one ``key<TAB>value`` line per pair.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clerk import AsyncClerk, ClerkError, ConfigError, OperationTimeoutError, ServerError
from clerk.admin import MembershipClient
from cli.bench import add_bench_arguments, run_bench
from cli.common import (
    EXIT_CONDITION,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    LOG_LEVELS,
    configure_logging,
    load_servers,
)
from cli.members import add_member_arguments, add_transfer_arguments, run_member_command
from cli.server import add_server_arguments, run_server
from cluster.status import StatusPoller, format_table, leader_of
from kvapi.codes import Err
from rpc.loop import run

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftkv",
        description="A raftkv node, client and status tool.",
        epilog="exit codes: 0 ok, 1 key not found / condition failed / membership change refused, "
        "2 usage or config error, 3 cluster unavailable or timed out",
    )
    parser.add_argument("-f", "--file", default="test.conf", help="test.conf (default ./test.conf)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per operation (default 5)"
    )
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS)
    # -f is accepted after the command too; SUPPRESS keeps the top-level value when it is not.
    conf = argparse.ArgumentParser(add_help=False)
    conf.add_argument("-f", "--file", default=argparse.SUPPRESS, help="test.conf")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[conf])

    server = add("server", "run one node of the cluster")
    add_server_arguments(server)
    # The server's own default is INFO: one line per role change, snapshot, peer loss.
    server.add_argument(
        "--log-level", dest="server_log_level", default="INFO", type=str.upper, choices=LOG_LEVELS
    )

    get = add("get", "print a key's value")
    get.add_argument("key")
    for name in ("put", "append"):
        p = add(name, f"{name} a value")
        p.add_argument("key")
        p.add_argument("value")
    delete = add("delete", "remove a key")
    delete.add_argument("key")
    scan = add("scan", "print the pairs with START <= key < END")
    scan.add_argument("start", nargs="?", default="")
    scan.add_argument("end", nargs="?", default=None)
    scan.add_argument("--limit", type=int, default=None)
    cas = add("cas", "set KEY to NEW only if it holds EXPECTED")
    cas.add_argument("key")
    cas.add_argument("expected")
    cas.add_argument("new")
    add("status", "a table of every member's role, term, leader and indexes")
    add_member_arguments(add("member", "list, add, promote or remove members"), conf)
    add_transfer_arguments(add("transfer-leader", "make another voter the leader"))

    # bench has its own -f (and --timeout): it must tell -f from --spawn.
    add_bench_arguments(sub.add_parser("bench", help="load-test a cluster: throughput, latency"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``raftkv`` with ``argv`` (default sys.argv[1:]); return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "server":
        configure_logging(args.server_log_level)
    else:
        configure_logging(args.log_level)
    try:
        if args.command == "server":
            return run_server(args)
        if args.command == "bench":
            return run_bench(args)
        servers = load_servers(args.file)
        if args.command == "status":
            return run(_status(servers, args.timeout))
        if args.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, not {args.timeout}")
        if args.command in ("member", "transfer-leader"):
            return run(run_member_command(servers, args, args.timeout))
        return run(_client_command(servers, args))
    except ConfigError as exc:
        print(f"raftkv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


async def _status(servers: list[tuple[str, int]], timeout: float) -> int:
    # Every member, the ones added since test.conf was written included (test.conf's nodes
    # that are no members any more stay listed, as such).
    nodes = dict(enumerate(servers))
    async with MembershipClient(servers, timeout=min(timeout, 1.0)) as members:
        try:
            listed = await members.members()
        except OperationTimeoutError:
            listed = None
    for member in listed.members if listed is not None else ():
        if member.address is not None:
            nodes[member.raft_id - 1] = member.address
    poller = StatusPoller(nodes, timeout=min(timeout, 1.0))
    try:
        statuses = await poller.poll()
    finally:
        await poller.close()
    print(format_table(statuses))
    leader = leader_of(statuses)
    if leader is None:
        print("no leader", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


async def _client_command(servers: list[tuple[str, int]], args: argparse.Namespace) -> int:
    async with AsyncClerk(servers, op_timeout=args.timeout) as kv:
        try:
            return await _run_client_command(kv, args)
        except OperationTimeoutError as exc:
            print(f"raftkv: cluster unavailable: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except ServerError as exc:
            print(f"raftkv: {exc}", file=sys.stderr)
            return EXIT_USAGE if exc.err == Err.BAD_REQUEST else EXIT_UNAVAILABLE
        except (ClerkError, ValueError) as exc:
            print(f"raftkv: {exc}", file=sys.stderr)
            return EXIT_USAGE


async def _run_client_command(kv: AsyncClerk, args: argparse.Namespace) -> int:
    command = args.command
    if command == "get":
        value = await kv.get(args.key)
        if value is None:
            print(f"raftkv: key not found: {args.key}", file=sys.stderr)
            return EXIT_CONDITION
        print(_text(value))
    elif command == "put":
        await kv.put(args.key, args.value)
        print("OK")
    elif command == "append":
        await kv.append(args.key, args.value)
        print("OK")
    elif command == "delete":
        result = await kv.delete(args.key)
        if not result.applied:
            print(f"raftkv: key not found: {args.key}", file=sys.stderr)
            return EXIT_CONDITION
        print("OK")
    elif command == "scan":
        if args.limit is not None and args.limit < 0:
            raise ValueError(f"--limit must not be negative, not {args.limit}")
        for key, value in await kv.scan(args.start, args.end, args.limit):
            print(f"{_text(key)}\t{_text(value)}")
    else:  # cas
        result = await kv.cas(args.key, args.expected, args.new)
        if not result.applied:
            now = "absent" if result.previous is None else repr(_text(result.previous))
            print(f"raftkv: cas refused: {args.key} is {now}", file=sys.stderr)
            return EXIT_CONDITION
        print("OK")
    return EXIT_OK


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="backslashreplace")


if __name__ == "__main__":
    sys.exit(main())
