"""Membership changes on real node processes, driven through ``raftkv`` as an operator does.

- Replacing nodes under load from separate client processes that know only the original
  test.conf: a follower, then the leader, then growing to five and shrinking back to three
  (one of the removed ones dead first), with the leadership moved to a node test.conf never
  named. The clients' merged history must be linearizable, every acknowledged write present
  exactly once, and the clients still making progress at the end.
- Quorum-loss recovery: ``--force-new-cluster`` on the last survivor of three, the other two
  data directories deleted, brings back every acknowledged write; the cluster grows to three.
- Bad input: each refused with a one-line reason and its exit code, the membership unchanged.

These are the commands docs/operations.md shows.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from bin_commands import REPO_ROOT, bin_env, command
from workload import ClientLoad

from cluster.conf import free_ports
from cluster.processes import ProcCluster
from kvapi.config import format_address
from kvapi.nodes import parse_node_index

MakeCluster = Callable[..., ProcCluster]
MakeLoad = Callable[..., ClientLoad]

# Each scenario is bounded: a hung one fails (and the fixtures still stop every process).
pytestmark = pytest.mark.timeout(90)
# How long the load runs between two steps.
LOAD_S = 0.5
# Bounds on waits that only a bug makes long (catching up, a removed node noticing it).
CATCH_UP_S = 20.0
EXIT_S = 15.0
REMOVED = "was removed from the cluster"


def run(coro: Coroutine[Any, Any, None], timeout: float = 80.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def raftkv(cluster: ProcCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``raftkv -f <the cluster's test.conf> args``, run to completion."""
    return command("raftkv", "-f", str(cluster.conf), *args, timeout=60.0)


def ok(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The output lines of a command that must have exited 0."""
    assert done.returncode == 0, (done.args, done.stdout, done.stderr)
    return done.stdout.splitlines()


def members(cluster: ProcCluster) -> dict[str, str]:
    """``member list --json``: node name -> voter|learner."""
    listed = json.loads(ok(raftkv(cluster, "member", "list", "--json"))[0])
    return {m["name"]: m["role"] for m in listed["members"]}


def leader_name(cluster: ProcCluster) -> str:
    """The leader ``member list --json`` names."""
    leader = json.loads(ok(raftkv(cluster, "member", "list", "--json"))[0])["leader"]
    assert isinstance(leader, str), leader
    return leader


def fresh_address() -> tuple[str, int]:
    return "127.0.0.1", free_ports(1)[0]


def add_learner(cluster: ProcCluster) -> int:
    """``member add HOST:PORT --learner``, then start the node with ``--join``; its index."""
    address = fresh_address()
    lines = ok(raftkv(cluster, "member", "add", format_address(address), "--learner"))
    index = parse_node_index(lines[0])  # the first line names the new node
    assert f"--join --id node{index} --listen {format_address(address)}" in lines[1]
    cluster.join(index, address)
    return index


def promote(cluster: ProcCluster, index: int) -> None:
    lines = ok(raftkv(cluster, "member", "promote", f"node{index}", "--wait", str(CATCH_UP_S)))
    assert lines == [f"node{index} is a voter"]


def add_voter(cluster: ProcCluster) -> int:
    """``member add HOST:PORT``, the whole procedure: the command prints the new node's name,
    the node is started meanwhile, and the command promotes it once it caught up."""
    address = fresh_address()
    args = [str(REPO_ROOT / "bin" / "raftkv"), "-f", str(cluster.conf), "member", "add"]
    args += [format_address(address), "--wait", str(CATCH_UP_S)]
    adding = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bin_env(),
    )
    try:
        assert adding.stdout is not None
        index = parse_node_index(adding.stdout.readline().strip())
        cluster.join(index, address)
        out, err = adding.communicate(timeout=CATCH_UP_S + 10)
    finally:
        if adding.poll() is None:
            adding.kill()
            adding.communicate()
    assert adding.returncode == 0, (out, err)
    assert out.splitlines()[-1] == f"node{index} is a voter"
    return index


def remove(cluster: ProcCluster, index: int) -> None:
    assert ok(raftkv(cluster, "member", "remove", f"node{index}")) == [f"node{index} removed"]


def stops_as_removed(cluster: ProcCluster, index: int) -> None:
    """Node ``index`` notices it was removed, says so and exits 0 by itself."""
    assert cluster.wait(index, EXIT_S) == 0, cluster.log(index)[-2000:]
    assert f"node{index} {REMOVED}" in cluster.log(index)


def refused(done: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    """The command exited ``code`` printing nothing but the one-line ``message``."""
    assert (done.returncode, done.stdout, done.stderr) == (code, "", message + "\n")


def usage_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2: argparse's usage line, then the one-line reason."""
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.splitlines()[-1].endswith(message), done.stderr


async def wait_applied_everywhere(cluster: ProcCluster, nodes: set[int]) -> int:
    """Wait until every node of ``nodes`` has applied all the leader committed, the same last
    index everywhere; that index."""
    async with asyncio.timeout(CATCH_UP_S):
        while True:
            replies = [s.reply for s in await cluster.statuses() if s.index in nodes]
            if all(r is not None for r in replies):
                applied = {r.Applied for r in replies if r is not None}
                last = {r.LastIndex for r in replies if r is not None}
                commit = max(r.Commit for r in replies if r is not None)
                if applied == last == {commit}:
                    return commit
            await asyncio.sleep(0.05)


def test_replace_a_follower_then_the_leader_then_grow_to_five_and_shrink_to_three_under_load(
    make_cluster: MakeCluster, make_load: MakeLoad
) -> None:
    cluster = make_cluster(3)

    async def main() -> None:
        original = set(range(3))
        voters = set(original)
        leader, _ = await cluster.wait_leader(timeout=20)
        load = make_load(cluster)  # the clients know test.conf's node0..node2 only
        await load.wait_running()
        await asyncio.sleep(LOAD_S)

        # Replace a follower: a fresh node as a learner, started, promoted; then the old one
        # goes, and is killed.
        follower = min(voters - {leader})
        first = add_learner(cluster)
        assert members(cluster)[f"node{first}"] == "learner"
        promote(cluster, first)
        remove(cluster, follower)
        cluster.kill(follower)
        voters = voters - {follower} | {first}
        assert members(cluster) == {f"node{i}": "voter" for i in voters}
        await asyncio.sleep(LOAD_S)

        # Replace the leader the same way: once its removal commits it steps down, another
        # voter leads (in a later term), and the old leader stops by itself.
        second = add_learner(cluster)
        promote(cluster, second)
        voters.add(second)
        leader, term = await cluster.wait_leader(among=voters)
        remove(cluster, leader)
        voters.remove(leader)
        await cluster.wait_leader(among=voters, above_term=term, timeout=10)
        stops_as_removed(cluster, leader)
        assert members(cluster) == {f"node{i}": "voter" for i in voters}
        await asyncio.sleep(LOAD_S)

        # Grow to five with `member add HOST:PORT` (learner, caught up, promoted), move the
        # leadership to the newest node, which no client was told of.
        third = add_voter(cluster)
        newest = add_voter(cluster)
        voters |= {third, newest}
        assert members(cluster) == {f"node{i}": "voter" for i in voters}
        assert ok(raftkv(cluster, "transfer-leader", f"node{newest}")) == [f"node{newest} leads"]
        assert leader_name(cluster) == f"node{newest}"
        await asyncio.sleep(LOAD_S)

        # Shrink back to three, keeping a node of test.conf: a member that died first, then a
        # live one.
        dead, live = sorted(voters - original - {newest})[:2]
        cluster.kill(dead)
        remove(cluster, dead)
        remove(cluster, live)
        stops_as_removed(cluster, live)
        voters -= {dead, live}
        assert members(cluster) == {f"node{i}": "voter" for i in voters}
        assert len(voters) == 3 and voters & original
        last_change_ns = time.monotonic_ns()
        await wait_applied_everywhere(cluster, voters)
        await asyncio.sleep(LOAD_S)
        load.stop()

        # The clients found the members added since test.conf and the leader among them.
        assert load.clients_progressing_after(last_change_ns) == load.client_ids()
        await load.verify()
        load.check_linearizable()

    run(main())


def test_force_new_cluster_on_the_last_survivor_brings_back_every_acknowledged_write(
    make_cluster: MakeCluster, make_load: MakeLoad
) -> None:
    cluster = make_cluster(3)

    async def main() -> None:
        leader, _ = await cluster.wait_leader(timeout=20)
        load = make_load(cluster)
        await load.wait_running()
        await asyncio.sleep(2 * LOAD_S)
        load.stop()
        # A quiet moment: the survivor holds every entry the leader committed.
        await wait_applied_everywhere(cluster, {0, 1, 2})
        survivor = (leader + 1) % 3
        dead = set(range(3)) - {survivor}

        # The majority is lost for good: two nodes die and their disks with them.
        for i in dead:
            cluster.kill(i)
            shutil.rmtree(cluster.workdir / "data" / f"node{i}")
        cluster.stop(survivor)
        cluster.start(survivor, once=["--force-new-cluster"])
        await cluster.wait_leader(among={survivor}, timeout=20)
        assert f"node{survivor}: forced a new cluster with itself as the only member" in (
            cluster.log(survivor)
        )
        assert members(cluster) == {f"node{survivor}": "voter"}
        refused(
            raftkv(cluster, "member", "remove", f"node{survivor}"),
            1,
            f"raftkv: refused: node{survivor} is the last voter: it cannot be removed",
        )
        await load.verify()
        load.check_linearizable()

        # Grow back to three with fresh nodes; ids of the lost members are never reused.
        added = {add_voter(cluster), add_voter(cluster)}
        assert added == {3, 4}
        assert members(cluster) == {f"node{i}": "voter" for i in {survivor, *added}}
        async with cluster.clerk(op_timeout=10.0) as kv:
            await kv.put("after", "recovery")
            assert await kv.get("after") == b"recovery"
        await wait_applied_everywhere(cluster, {survivor, *added})
        # The new members are voters with a quorum of their own: without the survivor they
        # elect a leader.
        term = max(s.reply.Term for s in await cluster.statuses() if s.reply is not None)
        cluster.kill(survivor)
        await cluster.wait_leader(among=added, above_term=term, timeout=10)

    run(main())


def test_bad_membership_input_is_refused_with_its_exit_code_and_changes_nothing(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    cluster = make_cluster(3)

    async def main() -> None:
        leader, _ = await cluster.wait_leader(timeout=20)
        original = {f"node{i}": "voter" for i in range(3)}
        node0 = format_address(cluster.servers[0])

        refused(
            raftkv(cluster, "member", "add", node0),
            1,
            f"raftkv: refused: {node0} is already the address of node0",
        )
        usage_error(
            raftkv(cluster, "member", "add", "127.0.0.1"),
            "'127.0.0.1' is not an address: expected HOST:PORT, e.g. 127.0.0.1:7100",
        )
        usage_error(
            raftkv(cluster, "member", "add", "127.0.0.1:70000"),
            "address '127.0.0.1:70000': port 70000 is outside 1..65535",
        )
        usage_error(
            raftkv(cluster, "member", "remove", "nodeX"),
            "'nodeX' names no node: expected node<i> or <i>, e.g. node0 or 0",
        )
        refused(
            raftkv(cluster, "member", "remove", "node9"),
            1,
            "raftkv: refused: node9 is not a member of this cluster",
        )
        refused(
            raftkv(cluster, "member", "promote", "node1"),
            1,
            "raftkv: refused: node1 is already a voter",
        )
        assert members(cluster) == original

        # Nothing listens at the address: the learner never catches up, and is removed again.
        nowhere = format_address(fresh_address())
        done = raftkv(cluster, "member", "add", nowhere, "--wait", "1")
        assert done.returncode == 3, done
        assert done.stdout.splitlines()[0] == "node3"
        reason, outcome = done.stderr.splitlines()
        assert re.fullmatch(
            r"raftkv: node3 was not promoted: node3 was still refused after 1 s: node3 has not "
            r"caught up: it holds the log through 0, \d+ entries behind the leader",
            reason,
        ), reason
        assert outcome == "raftkv: removed node3 again; nothing changed"
        assert members(cluster) == original

        # A learner that was never started: not promoted, not made leader, joined only at
        # its own address; then removed.
        address = fresh_address()
        lines = ok(raftkv(cluster, "member", "add", format_address(address), "--learner"))
        assert lines[0] == "node4"  # node3 is never used again
        learner = {**original, "node4": "learner"}
        done = raftkv(cluster, "member", "promote", "node4")
        assert done.returncode == 1 and done.stdout == "", done
        assert done.stderr.startswith("raftkv: refused: node4 has not caught up: "), done
        refused(
            raftkv(cluster, "transfer-leader", "node4"),
            1,
            "raftkv: refused: node4 is not another voter of this cluster",
        )
        elsewhere = fresh_address()
        refused(
            server_join(cluster, 4, elsewhere, tmp_path),
            2,
            f"raftkv: cannot join: node4 was added at {format_address(address)}, "
            f"not at {format_address(elsewhere)}",
        )
        assert members(cluster) == learner
        remove(cluster, 4)
        for unknown in (4, 9):  # removed, never added
            refused(
                server_join(cluster, unknown, fresh_address(), tmp_path),
                2,
                f"raftkv: cannot join: the cluster does not know node{unknown} "
                "(add it first: raftkv member add HOST:PORT)",
            )
        assert members(cluster) == original

        # A removed node that comes back stops again, and the cluster's leader and term stay.
        follower = (leader + 1) % 3
        remove(cluster, follower)
        stops_as_removed(cluster, follower)
        before = {s.index: s.reply for s in await cluster.statuses() if s.reply is not None}
        cluster.start(follower)
        stops_as_removed(cluster, follower)
        assert cluster.log(follower).count(REMOVED) == 2
        after = {s.index: s.reply for s in await cluster.statuses() if s.reply is not None}
        assert set(after) == set(before) == set(range(3)) - {follower}
        for i, reply in after.items():
            assert (reply.Leader, reply.Term) == (before[i].Leader, before[i].Term)
        assert members(cluster) == {n: r for n, r in original.items() if n != f"node{follower}"}

    run(main())


def server_join(
    cluster: ProcCluster, index: int, address: tuple[str, int], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """``raftkv server --join --id node<index> --listen HOST:PORT`` with a fresh data dir."""
    return command(
        "raftkv",
        "server",
        "--join",
        "--id",
        f"node{index}",
        "--listen",
        format_address(address),
        "-f",
        str(cluster.conf),
        "--data-dir",
        str(tmp_path / f"join{index}-{address[1]}"),
    )


def test_a_change_while_another_is_pending_is_refused(make_cluster: MakeCluster) -> None:
    # Ticks of 100 ms: the leader keeps leading for an election timeout (3 s) after its
    # followers stop answering (check-quorum), long enough to see the first change pending.
    cluster = make_cluster(3, extra_args=["--tick-ms", "100"])

    async def main() -> None:
        leader, _ = await cluster.wait_leader(timeout=30)
        followers = sorted(set(range(3)) - {leader})
        # Ask the leader only: a frozen follower would hold an ask for a whole RPC timeout.
        only_leader = cluster.workdir / "leader.conf"
        host, port = cluster.servers[leader]
        only_leader.write_text(f"node0ip={host}\nnode0port={port}\n", encoding="utf-8")
        nowhere = format_address(fresh_address())
        for i in followers:
            cluster.signal(i, signal.SIGSTOP)
        try:
            # The first change cannot commit without a follower: its outcome is unknown.
            done = command(
                "raftkv", "-f", str(only_leader), "--timeout", "0.5", "member", "add", nowhere,
                "--learner",
            )  # fmt: skip
            assert done.returncode == 3, done
            assert done.stderr.startswith(
                f"raftkv: cluster unavailable: could not add {nowhere} within 0.5 s (its "
                "outcome is unknown: list the members to see)"
            ), done.stderr
            # The second is refused while the first is pending.
            refused(
                command(
                    "raftkv", "-f", str(only_leader), "member", "remove", f"node{followers[0]}"
                ),
                1,
                "raftkv: refused: another membership change is still pending (not committed yet)",
            )
        finally:
            for i in followers:
                cluster.signal(i, signal.SIGCONT)
        # The first change commits once the followers answer again; the second was never made.
        expected = {f"node{i}": "voter" for i in range(3)}
        expected["node3"] = "learner"
        async with asyncio.timeout(CATCH_UP_S):
            while members(cluster) != expected:
                await asyncio.sleep(0.1)
        remove(cluster, 3)
        assert members(cluster) == {f"node{i}": "voter" for i in range(3)}

    run(main())
