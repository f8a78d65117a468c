"""The original's provider/consumer demo, end to end with real processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start(module: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def provider() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = start("examples.provider", "--host", "127.0.0.1", "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert found, f"unexpected first line {line!r}"
        yield proc, int(found.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_consumer_calls_the_provider(provider: tuple[subprocess.Popen[str], int]) -> None:
    _, port = provider
    consumer = start("examples.consumer", "--port", str(port), "--count", "3")
    out, err = consumer.communicate(timeout=20)
    assert consumer.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert line == f"call {i}: errcode=0 errmsg='' friends: gao yang, liu hong, wang shuo"


def test_provider_exits_cleanly_on_ctrl_c(provider: tuple[subprocess.Popen[str], int]) -> None:
    proc, _ = provider
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "provider stopped" in out
    assert "Traceback" not in err


def test_consumer_without_provider_says_so_in_one_line() -> None:
    consumer = start("examples.consumer", "--port", str(free_port()), "--count", "2")
    out, err = consumer.communicate(timeout=20)
    assert consumer.returncode == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("error: no provider answers: cannot connect to 127.0.0.1:")


def test_provider_on_a_busy_port_says_so(provider: tuple[subprocess.Popen[str], int]) -> None:
    _, port = provider
    second = start("examples.provider", "--port", str(port))
    _, err = second.communicate(timeout=20)
    assert second.returncode == 1
    assert err.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")
