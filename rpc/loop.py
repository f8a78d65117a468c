"""Choosing the event loop: uvloop where it can be imported, else the standard asyncio loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

_log = logging.getLogger(__name__)

T = TypeVar("T")


def install_event_loop() -> str:
    """Make new event loops uvloop loops when uvloop is importable; return "uvloop" or "asyncio".

    Logs one line when it falls back to the standard loop. Call it once, before the loop starts.
    """
    try:
        import uvloop
    except ImportError:
        _log.info("uvloop is not importable; using the standard asyncio event loop")
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh loop chosen by :func:`install_event_loop`."""
    install_event_loop()
    return asyncio.run(main)
