"""rpc.loop: uvloop where importable, else the standard loop with one log line."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator

import pytest

from rpc.loop import install_event_loop, run


@pytest.fixture(autouse=True)
def restore_policy() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)


def test_uses_uvloop_when_importable() -> None:
    import uvloop

    assert install_event_loop() == "uvloop"

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert run(loop_type()) is uvloop.Loop


def test_falls_back_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    with caplog.at_level(logging.INFO, logger="rpc.loop"):
        assert install_event_loop() == "asyncio"

    async def answer() -> int:
        return 42

    assert asyncio.run(answer()) == 42
    assert [r.getMessage() for r in caplog.records] == [
        "uvloop is not importable; using the standard asyncio event loop"
    ]
