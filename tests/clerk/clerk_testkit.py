"""A small in-process cluster for service and clerk tests: real RPC, in-memory Raft traffic.

Three (by default) RawNode + MemoryStorage + Replica triples share the test's event loop. Raft
messages are passed in memory (copied through their wire form), ticks come from
``loop.call_later``, and each replica's KVService is served by its own RpcProvider on
127.0.0.1 with a port from the OS. This is a test harness, not the node runtime: no disk, no
processes, one loop. Server index i has Raft id i + 1. With ``admin=True`` each server also
answers ``nodeAdmin.MemberList`` from :attr:`LocalCluster.members` (what the test says the
configuration is; Raft's own stays all n), so the clerk's membership following can be tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from kvapi.admin_pb2 import MemberInfo, MemberListReply, MemberListRequest
from kvapi.codes import Err
from kvapi.stubs import KvServerRpc, NodeAdmin
from kvserver.replica import Replica
from kvserver.service import KVService
from kvserver.sessions import DEFAULT_MAX_IDLE_MS
from kvserver.state_machine import KVStateMachine
from raftcore import Config, RawNode, ReadOnlyOption, Role
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Message
from rpc import RpcController, RpcProvider

T = TypeVar("T")

Wrap = Callable[[int, KVService], object]


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run a test coroutine on a fresh loop, bounded by ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class LocalCluster:
    """``n`` replicas on one loop, each serving kvServerRpc over TCP.

    ``cut`` holds server indexes whose Raft messages are dropped both ways; ``frozen`` stops all
    Raft traffic and ticks (nothing commits, nobody times out). ``wrap`` may replace a server's
    handlers object (e.g. to lose replies) before it is registered. ``clock_ms`` replaces the
    wall clock the services stamp writes with; ``session_max_idle_ms`` is the state machines'.
    ``admin`` serves MemberList: ``members`` are the indexes it lists (all, to begin with),
    ``silent_admin`` the servers whose MemberList never answers; ``member_list_calls`` counts
    the asks by server.
    """

    def __init__(
        self,
        n: int = 3,
        *,
        seed: int = 7,
        tick_s: float = 0.01,
        request_timeout: float = 0.5,
        lease_reads: bool = False,
        wrap: Wrap | None = None,
        clock_ms: Callable[[], int] | None = None,
        session_max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
        admin: bool = False,
    ) -> None:
        self.n = n
        self.admin = admin
        self.members = set(range(n))
        self.silent_admin: set[int] = set()
        self.member_list_calls = [0] * n
        self.tick_s = tick_s
        self.cut: set[int] = set()
        self.frozen = False
        self.errors: list[BaseException] = []
        ids = tuple(range(1, n + 1))
        rng = random.Random(seed)
        read_only = ReadOnlyOption.LEASE_BASED if lease_reads else ReadOnlyOption.SAFE
        self.replicas: list[Replica] = []
        self.services: list[KVService] = []
        self.providers: list[RpcProvider] = []
        self.addresses: list[tuple[str, int]] = []
        self._wrap = wrap
        self._scheduled: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        for i in range(n):
            storage = MemoryStorage(ids)
            node = RawNode(
                Config(id=i + 1, voters=ids, read_only=read_only),
                storage,
                random.Random(rng.random()),
            )
            machine = KVStateMachine(random.Random(i), session_max_idle_ms=session_max_idle_ms)
            replica = Replica(node, storage, machine)
            self.replicas.append(replica)
            self.services.append(
                KVService(
                    replica,
                    clock_ms or (lambda: int(time.time() * 1000)),
                    self._waker(i),
                    request_timeout=request_timeout,
                    lease_reads=lease_reads,
                )
            )

    async def start(self) -> None:
        """Serve every replica's KVService and start ticking; node 0 campaigns at once."""
        for i, service in enumerate(self.services):
            provider = RpcProvider()
            KvServerRpc.serve(provider, service if self._wrap is None else self._wrap(i, service))
            if self.admin:
                provider.register(NodeAdmin.SERVICE, self._admin(i))
            self.addresses.append(await provider.start("127.0.0.1", 0))
            self.providers.append(provider)
        self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)
        self.replicas[0].campaign()
        self._wake(0)

    async def close(self) -> None:
        """Stop ticking and close every provider; raise the first error a replica hit."""
        if self._timer is not None:
            self._timer.cancel()
        for provider in self.providers:
            await provider.close(grace=0.2)
        if self.errors:
            raise self.errors[0]

    # -- control ---------------------------------------------------------------------------------

    def leader(self) -> int | None:
        """Index of a server that believes it leads (None if none does)."""
        leaders = [i for i, r in enumerate(self.replicas) if r.role is Role.LEADER]
        return leaders[0] if len(leaders) == 1 else None

    async def wait_leader(self, timeout: float = 5.0, *, other_than: int | None = None) -> int:
        """Wait until exactly one server leads (and it is not ``other_than``); its index."""
        async with asyncio.timeout(timeout):
            while True:
                i = self.leader()
                if i is not None and i != other_than and self.replicas[i].applied_index > 0:
                    return i
                await asyncio.sleep(self.tick_s)

    def transfer_leadership(self, to: int) -> None:
        """Ask the current leader to hand leadership to server ``to``."""
        i = self.leader()
        assert i is not None, "no leader to transfer from"
        self.replicas[i].transfer_leadership(to + 1)
        self._wake(i)

    # -- nodeAdmin -------------------------------------------------------------------------------

    def _admin(self, i: int) -> dict[str, Callable[..., Any]]:
        async def member_list(request: MemberListRequest, controller: RpcController) -> Any:
            self.member_list_calls[i] += 1
            if i in self.silent_admin:
                await asyncio.sleep(60)  # the asker's deadline ends this
            reply = MemberListReply(Err=Err.OK.wire, Leader=self.replicas[i].leader_hint)
            for member in sorted(self.members):
                host, port = self.addresses[member]
                reply.Members.append(MemberInfo(Id=member + 1, Address=f"{host}:{port}".encode()))
            return reply

        def unused(request: Any, controller: RpcController) -> Any:
            raise NotImplementedError("only MemberList is served here")

        handlers: dict[str, Callable[..., Any]] = {
            name: unused for name in NodeAdmin.SERVICE.methods_by_name
        }
        handlers["MemberList"] = member_list
        return handlers

    # -- the runner --------------------------------------------------------------------------------

    def _waker(self, i: int) -> Callable[[], None]:
        return lambda: self._wake(i)

    def _wake(self, i: int) -> None:
        if i not in self._scheduled:
            self._scheduled.add(i)
            asyncio.get_running_loop().call_soon(self._process, i)

    def _process(self, i: int) -> None:
        self._scheduled.discard(i)
        try:
            while self.replicas[i].handle_ready(self._send):
                pass
        except BaseException as exc:
            self.errors.append(exc)
            raise

    def _send(self, messages: list[Message]) -> None:
        loop = asyncio.get_running_loop()
        for m in messages:
            src, dst = m.sender - 1, m.to - 1
            if self.frozen or src in self.cut or dst in self.cut:
                continue
            loop.call_soon(self._deliver, Message.FromString(m.SerializeToString()))

    def _deliver(self, m: Message) -> None:
        if self.frozen:
            return
        i = m.to - 1
        self.replicas[i].step([m])
        self._wake(i)

    def _tick(self) -> None:
        if not self.frozen:
            for i, replica in enumerate(self.replicas):
                replica.tick()
                self._wake(i)
        self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)


class Counting:
    """Wraps a KVService and notes the index of every server asked."""

    def __init__(self, index: int, inner: KVService, calls: list[int]) -> None:
        self.index = index
        self.inner = inner
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        handler = getattr(self.inner, name)

        async def counted(request: Any, controller: RpcController) -> Any:
            self.calls.append(self.index)
            return await handler(request, controller)

        return counted


@contextlib.asynccontextmanager
async def local_cluster(**options: Any) -> AsyncIterator[LocalCluster]:
    """A started :class:`LocalCluster` with an elected leader; closed on exit."""
    cluster = LocalCluster(**options)
    try:
        await cluster.start()
        await cluster.wait_leader()
        yield cluster
    finally:
        await cluster.close()
