"""The committed *_pb2.py / *_pb2.pyi files are exactly what `make proto` would generate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["rpc", "raftcore", "kvapi", "kvserver", "clerk", "examples"]
PROTOS = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.proto"))


def test_there_are_protos() -> None:
    assert PROTOS, "no .proto sources found"


@pytest.mark.parametrize("proto", PROTOS, ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_code_is_fresh(proto: Path, tmp_path: Path) -> None:
    rel = proto.relative_to(ROOT)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(rel),
        ],
        cwd=ROOT,
        check=True,
    )
    for suffix in ("_pb2.py", "_pb2.pyi"):
        name = rel.with_name(rel.stem + suffix)
        committed = ROOT / name
        assert committed.exists(), f"{name} is missing: run `make proto`"
        fresh = (tmp_path / name).read_text()
        assert committed.read_text() == fresh, f"{name} is stale: run `make proto`"
