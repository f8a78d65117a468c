"""Network namespaces and nftables for the torture tier: one namespace per node, links cut at will.

Theory of operation
-------------------
:class:`Network` builds, for ``n`` nodes, ``n + 1`` namespaces named ``<prefix>-n<i>`` and
``<prefix>-br``. The bridge namespace holds a bridge ``br0``; each node namespace holds ``eth0``,
one end of a veth pair whose other end is a port of that bridge. The root namespace gets exactly
one veth, ``<prefix>-c``, also a bridge port, with one address: the clients (test process, load
clients) reach the nodes through it, and nothing else is routed. The subnet is a 10.x.y.0/24 that
no route of the root namespace overlaps; node i is ``.i+1``, the bridge ``.253``, the root end
``.254``. No namespace has a default route, so traffic can only go to addresses of namespaces
this module made.

Faults are nftables rules in one table ``inet torture`` of each node namespace, on the *input*
hook only, so every packet between two nodes passes exactly one rule set (the receiver's): a cut
link drops the peer's packets (silently, as a real partition does: no RST, TCP retransmits); loss
drops a share of them with ``numgen random``. Each change rewrites every node's table in one
``nft -f`` transaction per node. The root namespace is never given a rule.

Names start with :func:`run_prefix` (``rkt<pid in hex>x``), so :func:`remove_leftovers` can remove
what this process made on any exit path, and what a dead earlier run left, without touching a
concurrent run's namespaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence

__all__ = [
    "BRIDGE_HOST",
    "CLIENT_HOST",
    "Network",
    "NetworkUnavailable",
    "check_available",
    "remove_leftovers",
    "render_ruleset",
    "run_prefix",
]

BRIDGE_HOST = 253
CLIENT_HOST = 254
_PREFIX_RE = re.compile(r"^rkt([0-9a-f]+)x")
_TABLE = "torture"


class NetworkUnavailable(RuntimeError):
    """Namespaces or nftables cannot be used here (the reason is the message)."""


def run_prefix() -> str:
    """The name prefix of everything this process makes (its pid, so runs never collide);
    each network adds a number to it: ``rkt<pid>x<k>``."""
    return f"rkt{os.getpid():x}x"


def _run(command: Sequence[str], stdin: str | None = None) -> str:
    done = subprocess.run(
        list(command), input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def check_available() -> None:
    """Raise NetworkUnavailable unless this process may make namespaces and run nft in them."""
    if os.geteuid() != 0:
        raise NetworkUnavailable("network namespaces need root (run as root, as CI does)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            raise NetworkUnavailable(f"{tool} is missing (apt-get install {package})")
    probe = f"{run_prefix()}xprobe"
    try:
        _run(["ip", "netns", "add", probe])
    except RuntimeError as exc:
        raise NetworkUnavailable(f"cannot make a network namespace: {exc}") from None
    try:
        _run(["ip", "netns", "exec", probe, "nft", "add", "table", "inet", _TABLE])
    except RuntimeError as exc:
        raise NetworkUnavailable(f"nftables does not work in a namespace: {exc}") from None
    finally:
        with contextlib.suppress(RuntimeError):
            _run(["ip", "netns", "del", probe])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(prefix: str | None = None) -> list[str]:
    """Delete the namespaces and root links named with ``prefix``, or (None) those of runs
    whose process is dead; return the names removed."""
    removed: list[str] = []
    names = [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line]
    links = [link["ifname"] for link in json.loads(_run(["ip", "-j", "link", "show"]) or "[]")]
    for name in [*names, *links]:
        match = _PREFIX_RE.match(name)
        if match is None:
            continue
        if prefix is not None:
            if not name.startswith(prefix):
                continue
        elif _pid_alive(int(match.group(1), 16)):
            continue
        kind = ["netns", "del"] if name in names else ["link", "del"]
        with contextlib.suppress(RuntimeError):  # a link goes with its namespace's peer
            _run(["ip", *kind, name])
            removed.append(name)
    return removed


def _free_subnet(rng: random.Random) -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that no route of the root namespace (any table) overlaps."""
    routes = json.loads(_run(["ip", "-4", "-j", "route", "show", "table", "all"]) or "[]")
    used = []
    for route in routes:
        dst = route.get("dst", "default")
        if dst != "default":
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(dst, strict=False))
    for _ in range(200):
        subnet = ipaddress.ip_network(f"10.{rng.randrange(200, 255)}.{rng.randrange(256)}.0/24")
        if not any(subnet.overlaps(u) for u in used if isinstance(u, ipaddress.IPv4Network)):
            return subnet
    raise NetworkUnavailable("no free 10.x.y.0/24 subnet for the test network")


def render_ruleset(
    *, blocked: Sequence[str], lossy: Sequence[str], peer_loss: int, client: str, client_loss: int
) -> str:
    """An nft -f script that replaces table ``inet torture`` with one input chain: drop every
    packet from ``blocked``, ``peer_loss`` percent of those from ``lossy`` and ``client_loss``
    percent of those from ``client``; accept everything else."""
    for percent in (peer_loss, client_loss):
        if not 0 <= percent <= 100:
            raise ValueError(f"a loss is a percentage, not {percent}")
    rules = []
    if blocked:
        rules.append(f"ip saddr {{ {', '.join(sorted(blocked))} }} drop")
    if peer_loss:
        rules.append(f"ip saddr {{ {', '.join(lossy)} }} numgen random mod 100 < {peer_loss} drop")
    if client_loss:
        rules.append(f"ip saddr {client} numgen random mod 100 < {client_loss} drop")
    body = "".join(f"\n    {rule}" for rule in rules)
    return (
        f"table inet {_TABLE} {{}}\ndelete table inet {_TABLE}\n"
        f"table inet {_TABLE} {{\n  chain input {{\n"
        f"    type filter hook input priority 0; policy accept;{body}\n  }}\n}}\n"
    )


class Network:
    """``n`` node namespaces on one bridge, reachable from the root namespace; see the module
    docstring. Call :meth:`close` on every exit path (it is idempotent)."""

    def __init__(self, prefix: str, n: int, rng: random.Random | None = None) -> None:
        """Build the namespaces and links (undone again if building fails half way)."""
        self.prefix = prefix
        self.n = n
        self.subnet = _free_subnet(rng or random.Random())
        base = self.subnet.network_address
        self.hosts = [str(base + i + 1) for i in range(n)]
        self.bridge_host = str(base + BRIDGE_HOST)
        self.client_host = str(base + CLIENT_HOST)
        self.bridge_ns = f"{prefix}-br"
        self.root_link = f"{prefix}-c"
        self.cuts: set[frozenset[int]] = set()
        self.peer_loss = 0
        self.client_loss = 0
        self._closed = False
        try:
            self._build()
            self.apply()
        except BaseException:
            self.close()
            raise

    def ns(self, i: int) -> str:
        """Node i's namespace."""
        return f"{self.prefix}-n{i}"

    def exec_prefix(self, i: int) -> list[str]:
        """The command prefix that runs a command in node i's namespace."""
        return ["ip", "netns", "exec", self.ns(i)]

    def _build(self) -> None:
        br, mask = self.bridge_ns, self.subnet.prefixlen
        _run(["ip", "netns", "add", br])
        _run(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", br, "addr", "add", f"{self.bridge_host}/{mask}", "dev", "br0"])
        _run(["ip", "-n", br, "link", "set", "br0", "up"])
        for i in range(self.n):
            ns, port = self.ns(i), f"p{i}"
            _run(["ip", "netns", "add", ns])
            # Both ends are made inside their namespaces: nothing appears in the root one.
            veth = ["ip", "link", "add", "eth0", "netns", ns, "type", "veth"]
            _run([*veth, "peer", "name", port, "netns", br])
            _run(["ip", "-n", br, "link", "set", port, "master", "br0", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{self.hosts[i]}/{mask}", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        veth = ["ip", "link", "add", self.root_link, "type", "veth"]
        _run([*veth, "peer", "name", "c", "netns", br])
        _run(["ip", "-n", br, "link", "set", "c", "master", "br0", "up"])
        _run(["ip", "addr", "add", f"{self.client_host}/{mask}", "dev", self.root_link])
        _run(["ip", "link", "set", self.root_link, "up"])

    # Faults -----------------------------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut every link between nodes of different groups (nodes in no group keep theirs)."""
        sets = [set(g) for g in groups]
        self.cuts = {
            frozenset((a, b)) for x, gx in enumerate(sets) for gy in sets[x + 1 :]
            for a in gx for b in gy
        }  # fmt: skip
        self.apply()

    def cut(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Cut exactly these node-to-node links (both directions), healing every other."""
        self.cuts = {frozenset(p) for p in pairs}
        self.apply()

    def loss(self, peer_percent: int, client_percent: int = 0) -> None:
        """Drop this share of packets between nodes and between the clients and the nodes."""
        self.peer_loss, self.client_loss = peer_percent, client_percent
        self.apply()

    def heal(self) -> None:
        """Remove every cut and every loss."""
        self.cuts, self.peer_loss, self.client_loss = set(), 0, 0
        self.apply()

    def ruleset(self, i: int) -> str:
        """Node i's nft script for the current faults."""
        peers = [h for j, h in enumerate(self.hosts) if j != i]
        blocked = [self.hosts[j] for j in range(self.n) if frozenset((i, j)) in self.cuts]
        # Peers' packets come from their own hosts, or from the bridge when the delay proxy
        # carries them.
        return render_ruleset(
            blocked=blocked,
            lossy=[*peers, self.bridge_host],
            peer_loss=self.peer_loss,
            client=self.client_host,
            client_loss=self.client_loss,
        )

    def apply(self) -> None:
        """Write every node's table for the current faults."""
        for i in range(self.n):
            _run([*self.exec_prefix(i), "nft", "-f", "-"], stdin=self.ruleset(i))

    def route_peers_through(self, port: int, proxy_port: dict[tuple[int, int], int]) -> None:
        """DNAT node i's connections to node j's ``port`` to ``proxy_port[i, j]`` on the bridge
        (where the delay proxy listens). Set before the nodes connect."""
        for i in range(self.n):
            rules = "".join(
                f"\n    ip daddr {self.hosts[j]} tcp dport {port} "
                f"dnat ip to {self.bridge_host}:{proxy_port[i, j]}"
                for j in range(self.n)
                if j != i
            )
            script = (
                "table ip torture_nat {\n  chain output {\n"
                f"    type nat hook output priority -100; policy accept;{rules}\n  }}\n}}\n"
            )
            _run([*self.exec_prefix(i), "nft", "-f", "-"], stdin=script)

    def close(self) -> None:
        """Delete every namespace and link this network made (processes in them must be gone:
        a namespace with a process left in it lives on without its name)."""
        if self._closed:
            return
        self._closed = True
        remove_leftovers(f"{self.prefix}-")
