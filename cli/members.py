"""``raftkv member list|add|promote|remove`` and ``raftkv transfer-leader``.

Exit codes as every raftkv command: 0 done; 1 the cluster refused the change (removing the last
voter, another change pending, promoting a learner that has not caught up without ``--wait``,
an address that is already a member, an unknown node); 2 usage (a bad address or node name);
3 the cluster is unavailable or did not answer in time.

``member add HOST:PORT`` without ``--learner`` is the whole procedure of thesis 4.2.1: add a
learner (its name is the first line printed, with the command that starts it), wait for it to
catch up (the operator starts it meanwhile), promote it. If it has not caught up within
``--wait`` seconds the learner is removed again, so nothing is left half done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from clerk.admin import MemberList, MembershipClient
from clerk.errors import ConfChangeRefusedError, OperationTimeoutError
from cli.common import EXIT_CONDITION, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from kvapi.config import ConfigError, format_address, parse_address
from kvapi.nodes import node_name, parse_node_index, raft_id

__all__ = ["add_member_arguments", "add_transfer_arguments", "run_member_command"]

DEFAULT_CATCH_UP_WAIT = 60.0
_RETRY_S = 0.2


def add_member_arguments(parser: argparse.ArgumentParser, conf: argparse.ArgumentParser) -> None:
    """The ``member`` command's subcommands (``conf`` carries ``-f``)."""
    sub = parser.add_subparsers(dest="member_command", required=True, metavar="SUBCOMMAND")
    listing = sub.add_parser(
        "list", help="every member: name, address, voter|learner, leader", parents=[conf]
    )
    listing.add_argument("--json", action="store_true", help="one JSON object instead")
    add = sub.add_parser(
        "add", help="add a node (as a learner, then promoted once caught up)", parents=[conf]
    )
    add.add_argument("address", metavar="HOST:PORT", type=_address)
    add.add_argument("--learner", action="store_true", help="add it as a learner and stop there")
    add.add_argument(
        "--wait",
        type=_seconds,
        default=DEFAULT_CATCH_UP_WAIT,
        metavar="SEC",
        help="how long to wait for it to catch up before promoting "
        f"(default {DEFAULT_CATCH_UP_WAIT:g})",
    )
    promote = sub.add_parser(
        "promote", help="make a learner a voter once it has caught up", parents=[conf]
    )
    promote.add_argument("node", type=_node, metavar="node<i>")
    promote.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SEC",
        help="keep trying this long while it catches up (default: refuse at once)",
    )
    remove = sub.add_parser("remove", help="remove a member (the leader too)", parents=[conf])
    remove.add_argument("node", type=_node, metavar="node<i>")


def add_transfer_arguments(parser: argparse.ArgumentParser) -> None:
    """``transfer-leader node<i>``."""
    parser.add_argument("node", type=_node, metavar="node<i>")


def _address(text: str) -> str:
    try:
        return format_address(parse_address(text))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _node(text: str) -> int:
    try:
        return raft_id(parse_node_index(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


async def run_member_command(
    servers: list[tuple[str, int]], args: argparse.Namespace, timeout: float
) -> int:
    """Run ``member ...`` or ``transfer-leader``; returns the exit code."""
    async with MembershipClient(servers, timeout=timeout) as client:
        try:
            return await _dispatch(client, args)
        except ConfChangeRefusedError as exc:
            print(f"raftkv: refused: {exc}", file=sys.stderr)
            return EXIT_CONDITION
        except OperationTimeoutError as exc:
            print(f"raftkv: cluster unavailable: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except ValueError as exc:
            print(f"raftkv: {exc}", file=sys.stderr)
            return EXIT_USAGE


async def _dispatch(client: MembershipClient, args: argparse.Namespace) -> int:
    if args.command == "transfer-leader":
        await client.transfer_leader(args.node)
        print(f"{node_name(args.node)} leads")
        return EXIT_OK
    command = args.member_command
    if command == "list":
        listed = await client.members()
        print(_json(listed) if args.json else _table(listed))
    elif command == "add":
        return await _add(client, args)
    elif command == "promote":
        await _promote(client, args.node, args.wait)
        print(f"{node_name(args.node)} is a voter")
    else:
        await client.remove(args.node)
        print(f"{node_name(args.node)} removed")
    return EXIT_OK


async def _add(client: MembershipClient, args: argparse.Namespace) -> int:
    new = await client.add_learner(args.address)
    name = node_name(new)
    print(name, flush=True)  # the first line: scripts read the new name from it
    print(
        f"start it with: raftkv server --join --id {name} --listen {args.address} "
        f"-f test.conf --data-dir DIR",
        flush=True,
    )
    if args.learner:
        return EXIT_OK
    try:
        await _promote(client, new, args.wait)
    except (ConfChangeRefusedError, OperationTimeoutError) as exc:
        print(f"raftkv: {name} was not promoted: {exc}", file=sys.stderr)
        try:
            await client.remove(new)
        except (ConfChangeRefusedError, OperationTimeoutError) as undo:
            print(f"raftkv: and removing it again failed too: {undo}", file=sys.stderr)
        else:
            print(f"raftkv: removed {name} again; nothing changed", file=sys.stderr)
        return EXIT_CONDITION if isinstance(exc, ConfChangeRefusedError) else EXIT_UNAVAILABLE
    print(f"{name} is a voter")
    return EXIT_OK


async def _promote(client: MembershipClient, node: int, wait: float) -> None:
    """Promote ``node``, trying again for ``wait`` seconds while it is refused as not yet
    possible (catching up, another change pending)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            await client.promote(node)
            return
        except ConfChangeRefusedError as exc:
            if not exc.not_yet or loop.time() + _RETRY_S > deadline:
                if exc.not_yet and wait > 0:
                    raise OperationTimeoutError(
                        f"{node_name(node)} was still refused after {wait:g} s: {exc}",
                        outcome_unknown=False,
                    ) from exc
                raise
        await asyncio.sleep(_RETRY_S)


def _rows(listed: MemberList) -> list[tuple[str, str, str, bool]]:
    return [
        (
            m.name,
            format_address(m.address) if m.address else "?",
            "learner" if m.learner else "voter",
            m.raft_id == listed.leader,
        )
        for m in listed.members
    ]


def _table(listed: MemberList) -> str:
    rows = _rows(listed)
    cells = [(name, address, role) for name, address, role, _ in rows]
    widths = [max(len(row[c]) for row in cells) for c in (0, 1, 2)]
    lines = []
    for row, (*_, leads) in zip(cells, rows, strict=True):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        lines.append(line + "  leader" if leads else line.rstrip())
    return "\n".join(lines)


def _json(listed: MemberList) -> str:
    return json.dumps(
        {
            "leader": node_name(listed.leader) if listed.leader else None,
            "members": [
                {"name": name, "address": address, "role": role, "leader": leader}
                for name, address, role, leader in _rows(listed)
            ],
        }
    )
