"""Opening a data directory: read the snapshot, replay the write-ahead log, finish what a crash cut.

Theory of operation
-------------------
1. Temporary files (``*.tmp``) are leftovers of writes that never completed: removed.
2. The snapshot in force is the ``snap-*.snap`` with the highest index; it must verify completely
   (snapshot files are synced before being renamed into place, so a bad one is damage, not a crash).
3. Replay starts at the newest *rebase* segment whose base is at or below that snapshot, and runs
   through every later segment, which must be numbered consecutively. Every record must verify,
   except that the last segment may end in a torn record (a crash during the last save): that tail
   is cut off, with a log line. A rebase segment with a base above the snapshot means a snapshot
   file is missing: damage.
4. If the snapshot is newer than the replay's base, the crash fell between installing the snapshot
   file and writing its rebase segment: the snapshot is installed now and the rebase segment
   written, exactly as the interrupted commit would have done.
5. Segments before the replay's start and older snapshots are leftovers of a completed commit:
   removed.

A fresh (empty) directory gets its first rebase segment, on an empty snapshot carrying ``voters``.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
from dataclasses import dataclass

from kvapi.nodes import node_name
from kvserver.storage.errors import CorruptionError
from kvserver.storage.fs import FileSystem
from kvserver.storage.records import HEADER_SIZE, RecordType, scan_records
from kvserver.storage.segments import (
    TMP_SUFFIX,
    SegmentHeader,
    SegmentKind,
    decode_segment_header,
    parse_segment_name,
    rebase_segment,
    segment_name,
    write_new_file,
)
from kvserver.storage.snapfile import SnapshotFile, parse_snapshot_name, snapshot_name
from raftcore.log_image import LogImage
from raftcore.raftpb_pb2 import ConfState, Entry, HardState, SnapshotMetadata
from raftcore.storage import StorageError

__all__ = ["Recovered", "recover"]

logger = logging.getLogger("kvserver.storage")

_MAX_HEADER_PAYLOAD = 1 << 16


@dataclass(slots=True)
class Recovered:
    """What a data directory holds, read back: the state and where appends continue."""

    log: LogImage
    snapshot: SnapshotFile | None
    segments: list[int]
    active_size: int


def recover(fs: FileSystem, directory: str, *, conf_state: ConfState, sync: bool) -> Recovered:
    """Read (and, for an empty directory, initialise) ``directory``; see the module docstring.

    Raises CorruptionError for damage, OSError for a failing file system.
    """
    names = fs.listdir(directory)
    for name in names:
        if name.endswith(TMP_SUFFIX):
            logger.info("%s: removing leftover temporary file %s", directory, name)
            fs.unlink(os.path.join(directory, name))
    seqs = sorted(s for s in map(parse_segment_name, names) if s is not None)
    snap_indexes = sorted(i for i in map(parse_snapshot_name, names) if i is not None)
    snapshot = _open_newest_snapshot(fs, directory, snap_indexes)
    if not seqs:
        if snapshot is not None:
            raise CorruptionError(
                snapshot.path, 0, "a snapshot but no log segment: the hard state is missing"
            )
        return _initialise(fs, directory, conf_state, sync=sync)

    snap_index = snapshot.metadata.index if snapshot else 0
    start, base = _replay_start(fs, directory, seqs, snapshot)
    for before, after in itertools.pairwise(seqs[start:]):
        if after != before + 1:
            raise CorruptionError(_path(directory, after), 0, f"segment {before + 1} is missing")
    log = LogImage(base)
    active_size = 0
    for position in range(start, len(seqs)):
        seq = seqs[position]
        last = position == len(seqs) - 1
        active_size = _replay_segment(fs, _path(directory, seq), seq, log, last=last, sync=sync)
    live = seqs[start:]
    if snapshot is not None and snap_index > log.base.index:
        live = [seqs[-1] + 1]
        active_size = _finish_snapshot_commit(fs, directory, snapshot, log, live[0], sync=sync)
    elif snapshot is not None:
        log.base.CopyFrom(snapshot.metadata)
    _remove_leftovers(fs, directory, [s for s in seqs if s < live[0]], snap_indexes, snapshot)
    if sync:
        fs.sync_dir(directory)
    return Recovered(log, snapshot, live, active_size)


def _finish_snapshot_commit(
    fs: FileSystem, directory: str, snapshot: SnapshotFile, log: LogImage, seq: int, *, sync: bool
) -> int:
    """Install ``snapshot`` on the replayed ``log`` and write its rebase segment ``seq``.

    A crash fell between a snapshot file's rename and its rebase segment; later appends must land
    after the install, so it is made durable before anything else. Returns the segment's size.
    """
    logger.warning(
        "%s: finishing an interrupted snapshot commit at index %d",
        directory,
        snapshot.metadata.index,
    )
    log.install(snapshot.metadata)
    content = rebase_segment(seq, log.base, log.hard_state, log.entries)
    write_new_file(fs, directory, segment_name(seq), content, sync=sync)
    return len(content)


def _path(directory: str, seq: int) -> str:
    return os.path.join(directory, segment_name(seq))


def _open_newest_snapshot(
    fs: FileSystem, directory: str, snap_indexes: list[int]
) -> SnapshotFile | None:
    if not snap_indexes:
        return None
    snapshot = SnapshotFile.open(fs, os.path.join(directory, snapshot_name(snap_indexes[-1])))
    if snapshot.metadata.index != snap_indexes[-1]:
        raise CorruptionError(
            snapshot.path, 16, f"metadata says index {snapshot.metadata.index}, the name disagrees"
        )
    return snapshot


def _initialise(fs: FileSystem, directory: str, conf_state: ConfState, *, sync: bool) -> Recovered:
    base = SnapshotMetadata(conf_state=conf_state)
    log = LogImage(base)
    content = rebase_segment(1, base, log.hard_state, [])
    write_new_file(fs, directory, segment_name(1), content, sync=sync)
    names = ", ".join(map(node_name, conf_state.voters)) or "none yet: joining a cluster"
    logger.info("%s: initialised an empty data directory (voters %s)", directory, names)
    return Recovered(log, None, [1], len(content))


def _read_header(fs: FileSystem, path: str, seq: int) -> SegmentHeader:
    head = fs.read_at(path, 0, HEADER_SIZE)
    length = struct.unpack_from("<I", head)[0] if len(head) == HEADER_SIZE else 0
    data = head + fs.read_at(path, HEADER_SIZE, min(length, _MAX_HEADER_PAYLOAD))
    scanned = scan_records(data, path, tail_may_be_torn=False)
    if not scanned.records:
        raise CorruptionError(path, 0, "empty segment file: no header")
    return decode_segment_header(scanned.records[0], path, seq)


def _replay_start(
    fs: FileSystem, directory: str, seqs: list[int], snapshot: SnapshotFile | None
) -> tuple[int, SnapshotMetadata]:
    """Position in ``seqs`` of the newest rebase segment at or below the snapshot, and its base.

    Walks back from the newest segment, so the leftovers before the start are never read.
    """
    snap_index = snapshot.metadata.index if snapshot else 0
    for position in range(len(seqs) - 1, -1, -1):
        path = _path(directory, seqs[position])
        header = _read_header(fs, path, seqs[position])
        if header.kind != SegmentKind.REBASE:
            continue
        if header.base.index > snap_index:
            raise CorruptionError(
                path,
                0,
                f"the segment builds on a snapshot at index {header.base.index}, but the newest "
                f"snapshot file is at {snap_index}: a snapshot file is missing",
            )
        if (
            snapshot
            and header.base.index == snap_index
            and header.base.term != snapshot.metadata.term
        ):
            raise CorruptionError(
                path,
                0,
                f"the segment builds on a snapshot at index {snap_index} term {header.base.term}, "
                f"but the snapshot file has term {snapshot.metadata.term}",
            )
        return position, header.base
    raise CorruptionError(
        _path(directory, seqs[0]), 0, "no segment starts the log: the rebase segment is missing"
    )


def _replay_segment(
    fs: FileSystem, path: str, seq: int, log: LogImage, *, last: bool, sync: bool
) -> int:
    """Apply every record of segment ``path`` to ``log``; return where its good records end."""
    data = fs.read(path)
    scanned = scan_records(data, path, tail_may_be_torn=last)
    if not scanned.records or scanned.records[0].offset != 0:
        raise CorruptionError(path, 0, "the segment header is damaged")
    decode_segment_header(scanned.records[0], path, seq)
    for record in scanned.records[1:]:
        if record.type == RecordType.ENTRY:
            entry = Entry()
            _parse(entry, record.payload, path, record.offset)
            if entry.index <= log.base.index:
                raise CorruptionError(
                    path, record.offset, f"entry {entry.index} is covered by the segment's snapshot"
                )
            try:
                log.append(log.to_append([entry]))
            except StorageError as exc:
                raise CorruptionError(path, record.offset, str(exc)) from exc
        elif record.type == RecordType.HARD_STATE:
            hard_state = HardState()
            _parse(hard_state, record.payload, path, record.offset)
            log.hard_state = hard_state
        else:
            raise CorruptionError(path, record.offset, f"unexpected record type {record.type}")
    if scanned.torn_reason is not None:
        logger.warning(
            "%s: cut off a torn record at byte offset %d (%s), %d bytes: a crash interrupted the "
            "last save, which was never acknowledged",
            path,
            scanned.valid_end,
            scanned.torn_reason,
            len(data) - scanned.valid_end,
        )
        handle = fs.open_append(path)
        try:
            handle.truncate(scanned.valid_end)
            if sync:
                handle.sync_data()
        finally:
            handle.close()
    return scanned.valid_end


def _parse(message: Entry | HardState, payload: bytes, path: str, offset: int) -> None:
    try:
        message.ParseFromString(payload)
    except Exception as exc:  # protobuf's DecodeError
        raise CorruptionError(path, offset, f"undecodable record: {exc}") from exc


def _remove_leftovers(
    fs: FileSystem,
    directory: str,
    old_seqs: list[int],
    snap_indexes: list[int],
    snapshot: SnapshotFile | None,
) -> None:
    keep = snapshot.metadata.index if snapshot else None
    old_snaps = [snapshot_name(i) for i in snap_indexes if i != keep]
    for name in [segment_name(s) for s in old_seqs] + old_snaps:
        logger.info("%s: removing %s, superseded by a snapshot", directory, name)
        fs.unlink(os.path.join(directory, name))
