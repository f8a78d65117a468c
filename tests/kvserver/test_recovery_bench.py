"""``python -m bench.recovery`` end to end on 20,000 keys: sensible figures, nothing left behind.

The run starts real node processes; its figures are not checked against targets here, only
that each is there and plausible.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cluster.processes import child_env

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS = 20_000


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_recovery_bench_reports_every_figure_and_cleans_up(tmp_path: Path) -> None:
    env = child_env()
    env["TMPDIR"] = str(tmp_path)
    command = [sys.executable, "-m", "bench.recovery", "--keys", str(KEYS), "--writes", "3"]
    done = subprocess.run(
        [*command, "--json", "--timeout", "60"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    assert result["keys"] == KEYS == result["snapshot_index"]
    # Each record is 16 + 100 bytes plus its two 4-byte lengths; blocks and sessions add little.
    assert KEYS * 124 <= result["snapshot_bytes"] <= KEYS * 124 + 4096
    for name in (
        "snapshot_encode_s",
        "snapshot_dump_s",
        "restore_s",
        "cluster_restart_s",
        "follower_restart_s",
    ):
        assert 0 < result[name] < 60, name
    assert len(result["cluster_listen_s"]) == 3
    assert all(0 < s <= result["cluster_restart_s"] for s in result["cluster_listen_s"])
    assert 100 < result["memory_per_key_bytes"] < 2000
    assert [m["node"] for m in result["nodes"]] == [0, 1, 2]
    for m in result["nodes"]:
        assert 10 << 20 < m["vm_rss"] <= m["vm_hwm"] < 1 << 30

    assert processes_mentioning(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []
