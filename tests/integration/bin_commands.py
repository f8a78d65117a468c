"""Running the commands of ``bin/`` as a user does, for the real-process tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cluster.processes import child_env

REPO_ROOT = Path(__file__).resolve().parents[2]


def bin_env() -> dict[str, str]:
    """The bin/ wrappers fall back to ``python3`` without a .venv: make it this interpreter."""
    env = child_env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def command(name: str, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run ``bin/<name> args`` to completion."""
    return subprocess.run(
        [str(REPO_ROOT / "bin" / name), *args],
        capture_output=True,
        text=True,
        env=bin_env(),
        timeout=timeout,
    )
