"""Reading the original's ``test.conf``: the cluster's server addresses, in node order.

The format, as the C++ original reads it: one ``key=value`` per line, keys ``node<i>ip`` and
``node<i>port`` for i = 0, 1, ...; ``#`` starts a comment that runs to the end of the line;
spaces around keys and values are trimmed; the first occurrence of a key wins (later ones are
ignored); other keys are ignored. Nodes are read from ``node0`` upwards and reading stops at the
first ``i`` with no ``node<i>ip``.

Unlike the original, bad input is an error, never a silent zero: a line with text but no ``=``,
a node with an ip but no port, an address that is neither an IP literal nor a host name, a port
that is not an integer in 1..65535, two nodes at one address, or no node at all raise
:class:`ConfigError` naming the file and, where there is one, the line.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

__all__ = ["ConfigError", "format_address", "load_test_conf", "parse_address", "parse_test_conf"]

_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


class ConfigError(ValueError):
    """A ``test.conf`` that cannot be read as a list of server addresses."""


def parse_test_conf(text: str, source: str = "test.conf") -> list[tuple[str, int]]:
    """The (host, port) of node0, node1, ... in ``text``; ``source`` names it in errors."""
    entries: dict[str, tuple[str, int]] = {}  # key -> (value, line number)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{source}:{number}: expected key=value, got {line!r}")
        entries.setdefault(key.strip(), (value.strip(), number))

    servers: list[tuple[str, int]] = []
    seen: dict[tuple[str, int], int] = {}
    i = 0
    while f"node{i}ip" in entries:
        host, host_line = entries[f"node{i}ip"]
        _check_host(host, f"{source}:{host_line}: node{i}ip")
        if f"node{i}port" not in entries:
            raise ConfigError(
                f"{source}: node{i}ip is set (line {host_line}) but node{i}port is not"
            )
        port_text, port_line = entries[f"node{i}port"]
        port = _parse_port(port_text, f"{source}:{port_line}: node{i}port")
        address = (host, port)
        if address in seen:
            raise ConfigError(
                f"{source}: node{i} and node{seen[address]} have the same address {host}:{port}"
            )
        seen[address] = i
        servers.append(address)
        i += 1
    if not servers:
        raise ConfigError(f"{source}: no node0ip: the file names no server")
    return servers


def load_test_conf(path: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """Read ``path`` and parse it with :func:`parse_test_conf` (OSError if it cannot be read)."""
    return parse_test_conf(Path(path).read_text(encoding="utf-8"), str(path))


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as (host, port), checked as test.conf's addresses are; ConfigError with a
    one-line reason otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        raise ConfigError(f"{text!r} is not an address: expected HOST:PORT, e.g. 127.0.0.1:7100")
    _check_host(host, f"address {text!r}")
    return host, _parse_port(port, f"address {text!r}")


def format_address(address: tuple[str, int]) -> str:
    """(host, port) as ``HOST:PORT``, the form membership changes carry."""
    return f"{address[0]}:{address[1]}"


def _check_host(host: str, where: str) -> None:
    if not host:
        raise ConfigError(f"{where}: empty address")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    # A name made of digits and dots only is a mistyped IPv4 address, not a host name.
    looks_numeric = all(label.isdigit() for label in labels)
    if looks_numeric or len(host) > 253 or not all(_HOSTNAME_LABEL.match(x) for x in labels):
        raise ConfigError(f"{where}: {host!r} is neither an IP address nor a host name")


def _parse_port(text: str, where: str) -> int:
    if not text.isdigit():
        raise ConfigError(f"{where}: port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}: port {port} is outside 1..65535")
    return port
