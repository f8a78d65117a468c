"""A tiny deterministic message pump for unit tests: RawNodes, MemoryStorage, no clock.

Each node's Readys are handled exactly as the runner contract says (persist, send, restore or
apply, advance); sent messages wait in one FIFO until ``deliver`` hands them over, through an
optional filter that may drop them (partitions, loss).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from raftcore import Config, RawNode, ReadState, ReadyPersister, Role
from raftcore.memory_storage import MemoryStorage
from raftcore.raftpb_pb2 import Entry, HardState, Message, SnapshotMetadata


@dataclass
class Node:
    """A RawNode, its storage, and a toy application: the list of applied commands."""

    raw: RawNode
    storage: MemoryStorage
    persister: ReadyPersister
    state: list[bytes] = field(default_factory=list)
    last_applied: int = 0
    reads: list[ReadState] = field(default_factory=list)
    applied_entries: list[Entry] = field(default_factory=list)  # for checkers to drain

    def applied_data(self) -> list[bytes]:
        return self.state

    def restore(self) -> None:
        """Load the application from the snapshot in storage."""
        data = self.storage.read_snapshot(0, self.storage.snapshot_size())
        self.state = decode(data)
        self.last_applied = self.storage.snapshot_metadata().index

    def compact(self) -> None:
        """The application snapshots its state at its applied index (section 7)."""
        index = self.last_applied
        meta = SnapshotMetadata(
            index=index, term=self.storage.term(index), conf_state=self.raw.status().conf_state
        )
        writer = self.storage.snapshot_writer(meta)
        writer.write(encode(self.state))
        writer.commit()


def encode(state: list[bytes]) -> bytes:
    return b"".join(len(d).to_bytes(4, "big") + d for d in state)


def decode(data: bytes) -> list[bytes]:
    state, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        state.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return state


class Pump:
    """``clocks``: give each node a monotonic clock of its own, ``now[i]`` (in ticks), which the
    test moves; without it every node keeps the core's logical clock (its tick count)."""

    def __init__(self, n: int = 3, seed: int = 1, clocks: bool = False, **config: object) -> None:
        self.ids = tuple(range(1, n + 1))
        self.config = config
        self.now: dict[int, float] | None = dict.fromkeys(self.ids, 0.0) if clocks else None
        self.rng = random.Random(seed)
        self.nodes: dict[int, Node] = {}
        self.queue: list[Message] = []
        self.drop: Callable[[Message], bool] = lambda m: False
        self.delivered: list[Message] = []
        for i in self.ids:
            self.start(i, MemoryStorage(self.ids))

    def start(self, i: int, storage: MemoryStorage, applied: int = 0) -> Node:
        cfg = Config(id=i, voters=self.ids, **self.config)  # type: ignore[arg-type]
        rng = random.Random(self.rng.random())
        if self.now is None:
            raw = RawNode(cfg, storage, rng, applied=applied)
        else:
            now = self.now
            raw = RawNode(cfg, storage, rng, applied=applied, clock=lambda: now[i])
        node = Node(raw, storage, ReadyPersister(storage))
        if applied:
            node.restore()
        self.nodes[i] = node
        return node

    def restart(self, i: int) -> Node:
        """Crash node i (keeping only what it persisted) and start it again."""
        self.queue = [m for m in self.queue if m.sender != i and m.to != i]
        storage = self.nodes[i].storage.copy()
        return self.start(i, storage, applied=storage.first_index() - 1)

    def process(self, i: int) -> None:
        node = self.nodes[i]
        raw = node.raw
        while raw.has_ready():
            rd = raw.ready()
            installed = node.persister.persist(rd)
            if installed is not None:
                node.restore()
            self.queue.extend(rd.messages)
            self.queue.extend(rd.persisted_messages)
            for e in rd.committed_entries:
                assert e.index == node.last_applied + 1, (e.index, node.last_applied)
                # Persisted above (this pump is synchronous), so the log agrees with it.
                assert node.storage.term(e.index) == e.term
                node.last_applied = e.index
                node.applied_entries.append(e)
                if e.data:
                    node.state.append(e.data)
            node.reads.extend(rd.read_states)
            raw.advance(rd)

    def process_all(self) -> None:
        for i in self.ids:
            self.process(i)

    def deliver(self, max_rounds: int = 1000) -> None:
        """Deliver messages (and the replies they cause) until the network is quiet."""
        self.process_all()
        for _ in range(max_rounds):
            if not self.queue:
                return
            batch, self.queue = self.queue, []
            for m in batch:
                node = self.nodes.get(m.to)  # None: a member not started yet
                if node is None or self.drop(m):
                    continue
                self.delivered.append(m)
                node.raw.step(m)
            self.process_all()
        raise AssertionError("the network never went quiet")

    def tick(self, n: int = 1, nodes: tuple[int, ...] | None = None) -> None:
        for _ in range(n):
            for i in nodes or self.ids:
                self.nodes[i].raw.tick()
            self.deliver()

    def leader(self) -> int:
        leaders = [i for i, n in self.nodes.items() if n.raw.role is Role.LEADER]
        assert len(leaders) <= 1 or len({self.nodes[i].raw.term for i in leaders}) == len(leaders)
        return max(leaders, key=lambda i: self.nodes[i].raw.term, default=0)

    def elect(self, i: int) -> None:
        self.nodes[i].raw.campaign()
        self.deliver()
        assert self.nodes[i].raw.role is Role.LEADER

    def isolate(self, *ids: int) -> None:
        cut = set(ids)
        self.drop = lambda m: (m.sender in cut) != (m.to in cut)

    def heal(self) -> None:
        self.drop = lambda m: False


def entries(*terms: int, start: int = 1) -> list[Entry]:
    """A log whose entry i (from ``start``) has term ``terms[i]``."""
    return [Entry(term=t, index=start + k, data=b"e%d" % (start + k)) for k, t in enumerate(terms)]


def single(
    i: int = 1,
    voters: tuple[int, ...] = (1, 2, 3),
    log: list[Entry] | None = None,
    term: int = 0,
    vote: int = 0,
    commit: int = 0,
    seed: int = 0,
    **config: object,
) -> tuple[RawNode, MemoryStorage]:
    """A lone RawNode over a storage holding ``log`` and hard state (term, vote, commit)."""
    storage = MemoryStorage(voters)
    storage.save(HardState(term=term, vote=vote, commit=commit), log or [])
    cfg = Config(id=i, voters=voters, **config)  # type: ignore[arg-type]
    return RawNode(cfg, storage, random.Random(seed)), storage


def drain(raw: RawNode, storage: MemoryStorage) -> list[Message]:
    """Handle every Ready as a runner would; return the messages sent."""
    persister = ReadyPersister(storage)
    sent: list[Message] = []
    while raw.has_ready():
        rd = raw.ready()
        persister.persist(rd)
        sent.extend(rd.messages)
        sent.extend(rd.persisted_messages)
        raw.advance(rd)
    return sent


def msg(kind: int, sender: int, to: int, term: int, **fields: object) -> Message:
    return Message(type=kind, sender=sender, to=to, term=term, **fields)  # type: ignore[arg-type]
