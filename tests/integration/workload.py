"""Client load for the integration tests: writes whose acknowledgements are remembered.

Each writer client puts distinct keys ``w<c>-<k>`` and appends ``<k>,`` to its own key ``log<c>``.
Everything acknowledged must be readable afterwards (:meth:`Writers.verify`): each put's value,
and every acknowledged append exactly once, in order (an append whose outcome was unknown may
appear too, but never twice).
"""

from __future__ import annotations

import asyncio
import time

from proc_cluster import ProcCluster

from clerk import AsyncClerk, OperationTimeoutError


class Writers:
    """``clients`` concurrent writers on one cluster; remembers what was acknowledged, and when."""

    def __init__(self, cluster: ProcCluster, clients: int = 2, *, op_timeout: float = 3.0) -> None:
        self.cluster = cluster
        self.clients = clients
        self.op_timeout = op_timeout
        self.acked_puts: dict[str, str] = {}
        self.acked_appends: dict[str, list[str]] = {f"log{c}": [] for c in range(clients)}
        self.ack_times: list[float] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Write until ``stop`` is set (each client finishes its current operation)."""
        await asyncio.gather(*(self._client(c, stop) for c in range(self.clients)))

    async def _client(self, c: int, stop: asyncio.Event) -> None:
        async with self.cluster.clerk(op_timeout=self.op_timeout) as kv:
            k = 0
            while not stop.is_set():
                key = f"w{c}-{k}"
                try:
                    await kv.put(key, str(k))
                    self._ack()
                    self.acked_puts[key] = str(k)
                    await kv.append(f"log{c}", f"{k},")
                    self._ack()
                    self.acked_appends[f"log{c}"].append(str(k))
                except OperationTimeoutError:
                    pass
                k += 1

    def _ack(self) -> None:
        self.ack_times.append(time.monotonic())

    def acks_after(self, t: float) -> int:
        """How many writes were acknowledged after monotonic time ``t``."""
        return sum(1 for a in self.ack_times if a > t)

    async def verify(self, kv: AsyncClerk) -> None:
        """Assert every acknowledged write is in the store (appends exactly once, in order)."""
        assert self.acked_puts, "no write was acknowledged"
        for key, value in self.acked_puts.items():
            assert await kv.get(key) == value.encode(), f"acknowledged put {key}={value} lost"
        for key, acked in self.acked_appends.items():
            stored = (await kv.get(key) or b"").decode().split(",")[:-1]
            assert len(stored) == len(set(stored)), f"{key}: an append applied twice: {stored}"
            position = {token: i for i, token in enumerate(stored)}
            missing = [token for token in acked if token not in position]
            assert not missing, f"{key}: acknowledged appends {missing} lost"
            order = [position[token] for token in acked]
            assert order == sorted(order), f"{key}: appends out of order: {stored}"
