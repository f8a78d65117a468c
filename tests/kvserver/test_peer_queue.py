"""PeerQueue: the bounded per-peer queue of kvserver.peer_sender (issue 14, bug 5)."""

from __future__ import annotations

from kvserver.peer_sender import MAX_CALL_BYTES, PeerQueue
from raftcore.raftpb_pb2 import (
    MSG_APPEND,
    MSG_HEARTBEAT,
    MSG_SNAPSHOT,
    MSG_VOTE,
    Entry,
    Message,
    SnapshotMetadata,
)


def append(index: int, n: int, *, term: int = 1, commit: int = 0, size: int = 10) -> Message:
    entries = [Entry(term=term, index=index + 1 + i, data=b"x" * size) for i in range(n)]
    return Message(
        type=MSG_APPEND, to=3, sender=1, term=term, index=index, entries=entries, commit=commit
    )


def test_a_probe_append_from_the_same_index_replaces_the_queued_one_in_place() -> None:
    q = PeerQueue()
    first = append(10, 2)
    later = append(20, 1)
    assert q.add(first) and q.add(later)
    again = append(10, 3, commit=5)  # the next heartbeat response's probe: same start, more
    assert q.add(again)
    batch, size = q.take(MAX_CALL_BYTES)
    assert batch == [again, later] and size == again.ByteSize() + later.ByteSize()
    assert q.bytes == 0 and len(q) == 0


def test_an_append_that_does_not_cover_a_queued_one_does_not_replace_it() -> None:
    q = PeerQueue()
    a, b, c = append(10, 5), append(12, 1), append(10, 5, term=2)
    for m in (a, b):
        assert q.add(m)
    assert q.add(c)  # a new term's append replaces nothing of the old term
    assert q.take(MAX_CALL_BYTES)[0] == [a, b, c]


def test_heartbeats_and_snapshot_chunks_replace_their_queued_copies() -> None:
    q = PeerQueue()
    meta = SnapshotMetadata(index=7, term=1)
    hb1 = Message(type=MSG_HEARTBEAT, to=3, term=1, commit=1, context=b"a")
    chunk = Message(type=MSG_SNAPSHOT, to=3, term=1, snapshot=meta, offset=0, data=b"s")
    vote = Message(type=MSG_VOTE, to=3, term=1)
    for m in (hb1, chunk, vote):
        assert q.add(m)
    hb2 = Message(type=MSG_HEARTBEAT, to=3, term=1, commit=2, context=b"b")
    chunk_again = Message(type=MSG_SNAPSHOT, to=3, term=1, snapshot=meta, offset=0, data=b"s")
    assert q.add(hb2) and q.add(chunk_again) and q.add(Message(type=MSG_VOTE, to=3, term=1))
    assert q.take(MAX_CALL_BYTES)[0] == [hb2, chunk_again, vote, vote]


def test_the_queue_drops_bulky_messages_past_its_byte_bound_and_anything_past_its_count() -> None:
    q = PeerQueue(max_bytes=3000, max_messages=4)
    assert q.add(append(0, 1, size=2000))
    assert not q.add(append(1, 1, size=2000))  # would pass 3000 bytes
    hb = Message(type=MSG_HEARTBEAT, to=3, term=1)
    assert q.add(hb)  # small control messages still fit
    assert q.add(Message(type=MSG_VOTE, to=3, term=1))
    assert q.add(Message(type=MSG_VOTE, to=3, term=1))
    assert not q.add(Message(type=MSG_VOTE, to=3, term=1))  # the fifth message
    assert q.add(Message(type=MSG_HEARTBEAT, to=3, term=1, commit=1))  # replaces, still fits
    assert len(q) == 4


def test_take_stays_under_the_call_budget_but_always_takes_one() -> None:
    q = PeerQueue()
    big = append(0, 1, size=5000)
    small = [append(i, 1, size=1000) for i in range(1, 5)]
    for m in (big, *small):
        q.add(m)
    batch, size = q.take(3000)
    assert batch == [big] and size == big.ByteSize()  # alone, over the budget
    batch, size = q.take(3000)
    assert batch == small[:2] and size <= 3000
    assert q.bytes == sum(m.ByteSize() for m in small[2:])
