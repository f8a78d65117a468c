"""kvapi.config: the original's test.conf rules, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvapi.config import ConfigError, load_test_conf, parse_test_conf


def test_reads_nodes_in_order_as_raftcorerun_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "test.conf"
    path.write_text(
        "node0ip=127.0.0.1\nnode0port=30001\n"
        "node1ip=127.0.0.1\nnode1port=30002\n"
        "node2ip=127.0.0.1\nnode2port=30003\n"
    )
    assert load_test_conf(path) == [
        ("127.0.0.1", 30001),
        ("127.0.0.1", 30002),
        ("127.0.0.1", 30003),
    ]


def test_comments_spaces_first_occurrence_and_unknown_keys() -> None:
    text = """
    # a cluster
      node0ip = 10.0.0.1   # the first node
    node0port=7000
    node0port=9999
    node0ip=10.0.0.9
    heartbeat=25
    node1ip=db-2.example.com
    node1port= 7001
    """
    assert parse_test_conf(text) == [("10.0.0.1", 7000), ("db-2.example.com", 7001)]


def test_reading_stops_at_the_first_missing_ip() -> None:
    text = "node0ip=127.0.0.1\nnode0port=1\nnode2ip=127.0.0.1\nnode2port=3\n"
    assert parse_test_conf(text) == [("127.0.0.1", 1)]


def test_ipv6_literal() -> None:
    assert parse_test_conf("node0ip=::1\nnode0port=80") == [("::1", 80)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no node0ip"),
        ("# nothing\n", "no node0ip"),
        ("node0port=1\n", "no node0ip"),
        ("node0ip=127.0.0.1\n", "node0ip is set \\(line 1\\) but node0port is not"),
        ("node0ip=127.0.0.1\nnode0port=http\n", "test.conf:2: node0port: port 'http'"),
        ("node0ip=127.0.0.1\nnode0port=0\n", "port 0 is outside 1..65535"),
        ("node0ip=127.0.0.1\nnode0port=65536\n", "outside 1..65535"),
        ("node0ip=127.0.0.1\nnode0port=-5\n", "is not a number"),
        ("node0ip=300.1.1.1\nnode0port=1\n", "'300.1.1.1' is neither"),
        ("node0ip=127.0.0\nnode0port=1\n", "neither an IP address nor a host name"),
        ("node0ip=bad host\nnode0port=1\n", "neither an IP address nor a host name"),
        ("node0ip=-x.com\nnode0port=1\n", "neither an IP address nor a host name"),
        ("node0ip=\nnode0port=1\n", "empty address"),
        ("node0ip 127.0.0.1\n", "test.conf:1: expected key=value"),
        (
            "node0ip=127.0.0.1\nnode0port=5\nnode1ip=127.0.0.1\nnode1port=5\n",
            "node1 and node0 have the same address 127.0.0.1:5",
        ),
    ],
)
def test_bad_files_get_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_test_conf(text)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.conf"
    path.write_text("node0ip=127.0.0.1\nnode0port=x\n")
    with pytest.raises(ConfigError, match=r"cluster\.conf:2: node0port"):
        load_test_conf(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_test_conf(tmp_path / "absent.conf")
