"""A seed replays a run exactly: same process or not, whatever Python's hash seed is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from raftcore.testing.campaign import CampaignResult, run_campaign

ROOT = Path(__file__).resolve().parents[3]
SEED = 7


def fingerprint(result: CampaignResult) -> str:
    return json.dumps(
        {
            "virtual_us": result.virtual_us,
            "final_index": result.final_index,
            "acknowledged": result.acknowledged,
            "reads": result.reads_answered,
            "voters": result.final_voters,
            "conf_changes": result.conf_changes,
            "actions": result.actions,
            "messages": {str(k): v for k, v in sorted(result.messages_sent.items())},
        },
        sort_keys=True,
    )


def test_same_seed_same_run_in_process() -> None:
    assert fingerprint(run_campaign(SEED)) == fingerprint(run_campaign(SEED))


def test_different_seeds_differ() -> None:
    assert fingerprint(run_campaign(SEED)) != fingerprint(run_campaign(SEED + 1))


def test_same_seed_same_run_under_other_hash_seeds() -> None:
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'tests' / 'raftcore' / 'campaign')!r})\n"
        "from test_determinism import SEED, fingerprint\n"
        "from raftcore.testing.campaign import run_campaign\n"
        "print(fingerprint(run_campaign(SEED)))\n"
    )
    outputs = set()
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        outputs.add(done.stdout.strip())
    outputs.add(fingerprint(run_campaign(SEED)))
    assert len(outputs) == 1
