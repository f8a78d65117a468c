"""The commands' pieces in-process: fatal errors end ``serve`` non-zero, and the formatting."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import pytest

from clerk import parse_test_conf
from cli.caller import percentile
from cli.server import EXIT_FATAL, add_server_arguments, joined_address, node_config, serve
from cluster.conf import format_test_conf, free_ports
from cluster.status import NodeStatus, format_table, leader_of, reported_leader
from kvapi.admin_pb2 import StatusReply
from kvserver.node import Node, NodeConfig
from kvserver.replica import Replica


def single_node(tmp_path: Path) -> NodeConfig:
    return NodeConfig(
        node_id=1, peers={1: ("127.0.0.1", free_ports(1)[0])}, data_dir=tmp_path / "node0"
    )


def test_an_error_in_the_raft_loop_ends_serve_with_a_non_zero_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Replica, *args: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(Replica, "finish_ready", broken)
    code = asyncio.run(asyncio.wait_for(serve(single_node(tmp_path)), 20))
    assert code == EXIT_FATAL
    assert "node0 ended by a fatal error: RuntimeError('injected')" in caplog.text


def test_an_unhandled_error_in_any_callback_ends_serve_with_a_non_zero_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    start = Node.start

    async def start_then_fail(self: Node) -> None:
        await start(self)
        asyncio.get_running_loop().call_soon(lambda: 1 / 0)

    monkeypatch.setattr(Node, "start", start_then_fail)
    with caplog.at_level(logging.INFO):
        code = asyncio.run(asyncio.wait_for(serve(single_node(tmp_path)), 20))
    assert code == EXIT_FATAL
    assert "unhandled error" in caplog.text and "ZeroDivisionError" in caplog.text
    assert "node0 stopped" in caplog.text  # storage was still closed


def test_a_taken_port_is_a_clear_startup_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = single_node(tmp_path)

    async def main() -> int:
        server = await asyncio.start_server(lambda r, w: None, *config.address)
        async with server:
            return await serve(config)

    assert asyncio.run(asyncio.wait_for(main(), 20)) == EXIT_FATAL
    assert f"cannot listen on 127.0.0.1:{config.address[1]}" in caplog.text


def test_format_test_conf_reads_back_as_the_same_servers() -> None:
    servers = [("127.0.0.1", port) for port in free_ports(3)]
    text = format_test_conf(servers)
    assert text.splitlines()[:2] == ["node0ip=127.0.0.1", f"node0port={servers[0][1]}"]
    assert parse_test_conf(text) == servers


def _server_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("-f", "--file")
    add_server_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("node", ["1", "node1"])
def test_server_id_is_the_test_conf_index_and_may_be_written_as_a_name(
    tmp_path: Path, node: str
) -> None:
    conf = tmp_path / "test.conf"
    conf.write_text(format_test_conf([("127.0.0.1", 7001), ("127.0.0.1", 7002)]))
    config = node_config(_server_args("--id", node, "-f", str(conf), "--data-dir", str(tmp_path)))
    assert config.address == ("127.0.0.1", 7002)
    assert config.data_dir == tmp_path / "node1"
    assert config.peers == {1: ("127.0.0.1", 7001), 2: ("127.0.0.1", 7002)}  # Raft ids inside


def test_server_id_that_names_no_node_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _server_args("--id", "nodeX")
    assert exit_info.value.code == 2
    assert "'nodeX' names no node" in capsys.readouterr().err


def test_status_table_and_leader() -> None:
    follower = StatusReply(
        Id=1, Role=b"follower", Term=3, Leader=2, Commit=9, Applied=9, Member=True, Learner=True
    )
    leader = StatusReply(
        Id=2, Role=b"leader", Term=3, Leader=2, Commit=9, Applied=8, LastIndex=9, Member=True
    )
    stale = StatusReply(Id=3, Role=b"leader", Term=2, Leader=3, SnapshotIndex=4)
    statuses = [
        NodeStatus(0, ("127.0.0.1", 1000), follower),
        NodeStatus(1, ("127.0.0.1", 1001), leader),
        NodeStatus(2, ("127.0.0.1", 1002), stale),
        NodeStatus(3, ("10.0.0.1", 1003), None, "refused"),
    ]
    assert leader_of(statuses) == (1, 3)
    assert leader_of([statuses[0], statuses[3]]) is None
    # A follower names a leader this poll did not reach (a node added later): node1 in term 3.
    assert reported_leader([statuses[0], statuses[3]]) == (1, 3)
    assert reported_leader([statuses[3]]) is None
    table = [line.split("  ") for line in format_table(statuses).splitlines()]
    assert [[cell.strip() for cell in row if cell.strip()] for row in table] == [
        [
            "node",
            "address",
            "reachable",
            "role",
            "term",
            "leader",
            "commit",
            "applied",
            "last",
            "snapshot",
            "member",
        ],
        ["node0", "127.0.0.1:1000", "yes", "follower", "3", "node1", "9", "9", "0", "0", "learner"],
        ["node1", "127.0.0.1:1001", "yes", "leader", "3", "node1", "9", "8", "9", "0", "voter"],
        ["node2", "127.0.0.1:1002", "yes", "leader", "2", "node2", "0", "0", "0", "4", "none"],
        ["node3", "10.0.0.1:1003", "no", "-", "-", "-", "-", "-", "-", "-", "-"],
    ]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_joining_a_cluster_no_node_of_which_answers_is_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = free_ports(2)  # nothing listens on them
    config = NodeConfig(
        node_id=4,
        peers={1: ("127.0.0.1", dead[0])},
        data_dir=tmp_path / "node3",
        listen=("127.0.0.1", dead[1]),
        join=True,
    )
    assert asyncio.run(joined_address(config, "test.conf", timeout=0.5)) == 3
    assert "raftkv: cannot join: no node of test.conf answered" in capsys.readouterr().err
