"""Ports and the test.conf file of a cluster on one machine."""

from __future__ import annotations

import socket
from collections.abc import Sequence

__all__ = ["format_test_conf", "free_ports"]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports the OS reports free on ``host`` (held together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def format_test_conf(servers: Sequence[tuple[str, int]]) -> str:
    """``servers`` as the original's test.conf: ``node<i>ip=...`` and ``node<i>port=...``."""
    lines = []
    for i, (host, port) in enumerate(servers):
        lines += [f"node{i}ip={host}", f"node{i}port={port}"]
    return "\n".join(lines) + "\n"
