"""A randomized fault campaign (``TORTURE_SECONDS`` long, ``TORTURE_SEED`` replays its choices),
and the tier's own plumbing: node processes die with their parent even through ``ip netns exec``,
and a dead run's namespaces are removed by the next.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Torture
from netns import remove_leftovers

from cluster.processes import child_env

MakeTorture = Callable[..., Torture]

pytestmark = [pytest.mark.torture, pytest.mark.timeout(900)]
HERE = Path(__file__).resolve().parent
EPOCH_S = 30.0


async def one_fault(t: Torture, n: int) -> None:
    """Inject one fault drawn from the seed, hold it 1-3 s, then undo it."""
    rng = t.rng
    hold = rng.uniform(1.0, 3.0)
    kind = rng.choice(["isolate", "split", "bridge", "loss", "kill", "pause", "kill+cut"])
    nodes = list(range(n))
    leader = (await t.nodes.wait_leader(timeout=20))[0]
    if kind == "isolate":
        t.partition([{leader}, set(nodes) - {leader}])
        await t.read_from(leader, hold)
    elif kind == "split":
        minority = set(rng.sample(nodes, (n - 1) // 2))
        t.partition([minority, set(nodes) - minority])
        await asyncio.sleep(hold)
    elif kind == "bridge":
        a, b, c = rng.sample(nodes, 3)
        t.note(f"bridge: node{a} sees both sides")
        t.cut([(b, c)])
        await asyncio.sleep(hold)
    elif kind == "loss":
        t.loss(rng.choice([10, 20, 30]), rng.choice([0, 5]))
        await asyncio.sleep(hold)
    elif kind in ("kill", "kill+cut"):
        victim = rng.choice(nodes)
        t.kill(victim)
        if kind == "kill+cut":
            others = [i for i in nodes if i != victim]
            t.cut([(others[0], others[1])])
        await asyncio.sleep(hold)
        t.restart(victim)
    else:
        victim = rng.choice(nodes)
        t.pause(victim)
        await asyncio.sleep(hold)
        t.resume(victim)
    t.heal_network()
    await asyncio.sleep(rng.uniform(0.5, 1.5))


@pytest.mark.parametrize("lease_reads", [False, True], ids=["readindex", "lease"])
def test_random_faults_campaign(
    make_torture: MakeTorture, torture_seconds: float, lease_reads: bool
) -> None:
    t = make_torture(3, lease_reads=lease_reads)

    async def main() -> None:
        await t.start_load()
        end = time.monotonic() + torture_seconds
        epoch_end = time.monotonic() + EPOCH_S
        while time.monotonic() < end:
            await one_fault(t, 3)
            if time.monotonic() > epoch_end and time.monotonic() < end:
                await t.start_load()  # a fresh epoch of clients (see Torture.start_load)
                epoch_end = time.monotonic() + EPOCH_S
        await t.finish()

    asyncio.run(asyncio.wait_for(main(), torture_seconds + 180))


ORPHAN = """
import sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from pathlib import Path
from harness import NetnsCluster
from netns import Network, run_prefix
net = Network(run_prefix() + "1", 1)
cluster = NetnsCluster(Path(sys.argv[3]), net, lease_reads=False)
cluster.start_all()
print(cluster.procs[0].pid, run_prefix(), flush=True)
time.sleep(600)
"""


def test_nodes_die_with_their_parent_and_its_namespaces_are_removed_later(
    netns_ready: None, tmp_path: Path
) -> None:
    integration = str(HERE.parent / "integration")
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(HERE), integration, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert parent.stdout is not None
        pid_text, prefix = parent.stdout.readline().split()
        node = int(pid_text)
        assert (
            f"{prefix}1-n0"
            in subprocess.run(
                ["ip", "netns", "identify", str(node)], capture_output=True, text=True, check=True
            ).stdout
        )
        parent.kill()  # kill -9: no cleanup of its own runs
        parent.wait()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{node}").exists() and "Z" not in _state(node):
            assert time.monotonic() < deadline, "the node outlived its parent by 10 s"
            time.sleep(0.05)
        removed = remove_leftovers(None)
        assert f"{prefix}1-n0" in removed and f"{prefix}1-br" in removed
        assert (
            prefix
            not in subprocess.run(
                ["ip", "netns", "list"], capture_output=True, text=True, check=True
            ).stdout
        )
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"
