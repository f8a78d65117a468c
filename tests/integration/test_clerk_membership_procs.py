"""Clerks follow the membership of real nodes: started from the original test.conf, a clerk (and
the ``raftkv get/put`` commands) keep working after a node was added, made leader, and the
first node removed and stopped."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from test_commands import command

from clerk import Clerk
from cluster.conf import free_ports
from cluster.processes import ProcCluster

MakeCluster = Callable[..., ProcCluster]

pytestmark = pytest.mark.timeout(90)


def test_clerks_from_the_original_test_conf_follow_an_added_leader_and_a_removal(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    cluster = make_cluster(3)
    asyncio.run(cluster.wait_leader(timeout=20))
    conf = str(cluster.conf)

    def raftkv(*args: str) -> subprocess.CompletedProcess[str]:
        return command("raftkv", "-f", conf, *args)

    def ok(*args: str) -> str:
        done = raftkv(*args)
        assert done.returncode == 0, f"raftkv {' '.join(args)}: {done.stderr}"
        return done.stdout

    # A clerk that lives through the changes, knowing only test.conf's node0..node2.
    with Clerk(cluster.conf, op_timeout=20.0) as kv:
        kv.put("a", "1")
        assert ok("put", "b", "1") == "OK\n"

        (port,) = free_ports(1)
        address = f"127.0.0.1:{port}"
        assert ok("member", "add", address, "--learner").splitlines()[0] == "node3"
        # Started by the cluster object, so the fixture stops it on every exit path.
        cluster.node_args[3] = ["--join", "--listen", address]
        cluster.start(3)
        assert ok("member", "promote", "node3", "--wait", "10") == "node3 is a voter\n"
        assert ok("transfer-leader", "node3") == "node3 leads\n"
        assert ok("member", "remove", "node0") == "node0 removed\n"
        cluster.stop(0)  # it stops by itself once it knows; make sure it is gone

        # node0 refuses, node1/node2 hint Raft id 4: the clerk learns where node3 is.
        assert kv.get("a") == b"1"
        kv.put("a", "2")
        assert kv.leader == 3
        assert sorted(kv.servers) == [1, 2, 3]  # node0 is asked no more

        # A command line clerk from the same test.conf, which names no node3.
        assert ok("get", "a") == "2\n"
        assert ok("put", "c", "3") == "OK\n"
        assert kv.get("c") == b"3"

    with Clerk(cluster.conf, op_timeout=20.0) as fresh:
        assert fresh.get("b") == b"1"
        assert fresh.get("c") == b"3"
