"""The replicated key-value map: committed commands in, results out; pure and deterministic.

Theory of operation
-------------------
Every node applies the same committed log entries in the same order to a :class:`KVStateMachine`,
so every node holds the same map and the same session table at each index. ``apply`` decodes one
entry's :class:`~kvserver.kvcommand_pb2.Command`, answers a retried request from the session cache
(:mod:`kvserver.sessions`), and otherwise executes it on the skip list and caches the result.

Reads (``get`` and ``scan``) do not go through the log: the node serves them once its applied index
has reached a read index confirmed by the Raft core (ReadIndex), so they are linearizable without
costing a log write, and they never touch the session table.

Results use the original's error strings: ``OK``, ``ErrNoKey``; and for the new operations
``ErrKeyExists`` (PutIfAbsent on a present key), ``ErrCasMismatch`` (CompareAndSwap whose
expectation failed; ``value`` then holds the current value) and ``ErrBadCommand`` (an entry that is
not a Command: every node refuses it the same way rather than crash). The session table adds
``ErrStaleRequest`` and ``ErrSessionExpired`` (:mod:`kvserver.sessions`, ``docs/sessions.md``).

Snapshot format (version 1, integers big-endian)::

    magic b"RKVS" | version u16 = 1 | sessions_len u32 | SessionTable (protobuf) | map snapshot

where the map snapshot is :mod:`skiplist.snapshot`'s own checksummed stream. Its size grows
with the data and the live sessions, never with the history of operations.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

from google.protobuf.message import DecodeError

from kvapi.codes import Err
from kvserver.kvcommand_pb2 import Command, Op, Result, SessionTable
from kvserver.sessions import DEFAULT_MAX_CLOCK_STEP_MS, DEFAULT_MAX_IDLE_MS, Sessions
from skiplist.skiplist import SkipList
from skiplist.snapshot import SnapshotError, SnapshotLoader, dump_chunks

__all__ = [
    "KVSnapshotLoader",
    "KVStateMachine",
]


_MAGIC = b"RKVS"
_VERSION = 1
_HEADER = struct.Struct(">4sHI")


class KVStateMachine:
    """A bytes -> bytes ordered map plus exactly-once sessions, driven by committed entries."""

    def __init__(
        self,
        rng: random.Random,
        *,
        session_max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
        session_clock_step_ms: int = DEFAULT_MAX_CLOCK_STEP_MS,
    ) -> None:
        """``rng`` draws the skip list's tower heights (shape only; never the map's content);
        the session options are :class:`~kvserver.sessions.Sessions`' (every node's must match)."""
        self._rng = rng
        self._data: SkipList[bytes, bytes] = SkipList(rng)
        self._sessions = Sessions(session_max_idle_ms, session_clock_step_ms)

    @property
    def sessions(self) -> Sessions:
        """The session table (read-only use: statistics and tests)."""
        return self._sessions

    def __len__(self) -> int:
        return len(self._data)

    # -- writes, in log order --------------------------------------------------------------------

    def apply(self, data: bytes) -> Result | None:
        """Apply one committed entry's data; None for the leader's no-op (empty data)."""
        if not data:
            return None
        try:
            command = Command.FromString(data)
        except DecodeError:
            return Result(err=Err.BAD_COMMAND)
        self._sessions.advance_clock(command.now_ms)
        cached = self._sessions.lookup(command)
        if cached is not None:
            return cached
        result = self._execute(command)
        self._sessions.record(command, result)
        return result

    def _execute(self, c: Command) -> Result:
        data = self._data
        current = data.get(c.key)
        op = c.op
        if op == Op.OP_PUT:
            data.put(c.key, c.value)
            return Result(err=Err.OK)
        if op == Op.OP_APPEND:
            data.put(c.key, c.value if current is None else current + c.value)
            return Result(err=Err.OK)
        if op == Op.OP_DELETE:
            if current is None:
                return Result(err=Err.NO_KEY)
            data.delete(c.key)
            return Result(err=Err.OK, value=current)
        if op == Op.OP_PUT_IF_ABSENT:
            if current is not None:
                return Result(err=Err.KEY_EXISTS, value=current)
            data.put(c.key, c.value)
            return Result(err=Err.OK)
        if op == Op.OP_UPDATE:
            if current is None:
                return Result(err=Err.NO_KEY)
            data.put(c.key, c.value)
            return Result(err=Err.OK, value=current)
        if op == Op.OP_CAS:
            matches = current is None if c.expect_absent else current == c.expected
            if not matches:
                return Result(
                    err=Err.CAS_MISMATCH if current is not None else Err.NO_KEY,
                    value=current or b"",
                )
            data.put(c.key, c.value)
            return Result(err=Err.OK, value=current or b"")
        return Result(err=Err.BAD_COMMAND)

    # -- reads, served at a confirmed read index -------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None if it is absent."""
        return self._data.get(key)

    def scan(
        self, start: bytes = b"", end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < end`` (no upper bound if ``end`` is None), ascending."""
        return list(self._data.range(start, end, limit))

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot_chunks(self) -> Iterator[bytes]:
        """The whole state as a stream of chunks (the map must not change while it runs)."""
        sessions = self._sessions.to_proto().SerializeToString()
        yield _HEADER.pack(_MAGIC, _VERSION, len(sessions)) + sessions
        yield from dump_chunks(self._data)

    def snapshot_loader(self) -> KVSnapshotLoader:
        """A loader to feed a snapshot's chunks into, then pass to :meth:`restore`."""
        sessions = self._sessions
        return KVSnapshotLoader(self._rng, sessions.max_idle_ms, sessions.max_clock_step_ms)

    def restore(self, loader: KVSnapshotLoader) -> None:
        """Replace the whole state with a snapshot that ``loader`` has read completely."""
        self._data, self._sessions = loader.finish()


class KVSnapshotLoader:
    """Parses a snapshot fed in chunks of any size; nothing changes until ``restore``.

    Raises :class:`skiplist.snapshot.SnapshotError` for damaged input, so a caller that fails to
    load keeps its previous state.
    """

    def __init__(
        self,
        rng: random.Random,
        session_max_idle_ms: int,
        session_clock_step_ms: int,
    ) -> None:
        self._rng = rng
        self._session_options = (session_max_idle_ms, session_clock_step_ms)
        self._head = bytearray()
        self._sessions: SessionTable | None = None
        self._map: SnapshotLoader | None = None

    def feed(self, chunk: bytes) -> None:
        """Consume the next chunk of the snapshot."""
        if self._map is not None:
            self._map.feed(chunk)
            return
        self._head += chunk
        if len(self._head) < _HEADER.size:
            return
        magic, version, sessions_len = _HEADER.unpack_from(self._head)
        if magic != _MAGIC or version != _VERSION:
            raise SnapshotError(f"not a raftkv KV snapshot (magic {magic!r}, version {version})")
        end = _HEADER.size + sessions_len
        if len(self._head) < end:
            return
        try:
            self._sessions = SessionTable.FromString(bytes(self._head[_HEADER.size : end]))
        except DecodeError as exc:
            raise SnapshotError(f"the session table in the snapshot is damaged: {exc}") from exc
        self._map = SnapshotLoader(self._rng)
        rest = bytes(self._head[end:])
        self._head = bytearray()
        if rest:
            self._map.feed(rest)

    def finish(self) -> tuple[SkipList[bytes, bytes], Sessions]:
        """The map and the session table the snapshot holds; raises if it ended early."""
        if self._map is None or self._sessions is None:
            raise SnapshotError("the KV snapshot ended before its session table")
        return self._map.finish(), Sessions.from_proto(self._sessions, *self._session_options)
