"""The ordered map under the KV state machine: a skip list, and its snapshot format.

Pure: nothing here does I/O; randomness comes from an injected ``random.Random``.
"""

from skiplist.skiplist import OrderedKey, SkipList, SkipListBuilder
from skiplist.snapshot import (
    FORMAT_VERSION,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotLoader,
    SnapshotTruncatedError,
    dump_chunks,
    dumps,
    load_chunks,
    loads,
)

__all__ = [
    "FORMAT_VERSION",
    "OrderedKey",
    "SkipList",
    "SkipListBuilder",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotLoader",
    "SnapshotTruncatedError",
    "dump_chunks",
    "dumps",
    "load_chunks",
    "loads",
]
