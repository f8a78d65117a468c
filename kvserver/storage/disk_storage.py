"""DiskStorage: the storage contract on a write-ahead log and snapshot files in one directory.

Theory of operation
-------------------
Every ``save()`` encodes its entries and its hard state as records, appends them to the active
segment in one write and makes them durable with one fdatasync (group commit: 1 or 500 entries
cost one sync), and only then updates the in-memory :class:`raftcore.log_image.LogImage` that
serves every read (the same rules :class:`raftcore.memory_storage.MemoryStorage` runs on). An
overwrite of the log's tail needs no separate truncation: replay applies the same truncate-suffix
rule to the records in order, so the overwritten entries can never come back.

Why the entries live in memory rather than behind an index of file offsets: the Raft core reads the
recent log constantly (replication, commit, apply), and a snapshot bounds how much is held. Serving
from memory makes every read free of system calls and of failure modes, and keeps the files
append-only. The cost, the entries since the last snapshot, is what an operator tunes with the
snapshot interval.

A failed write or sync is rolled back: the segment is cut back to its last acknowledged byte and
synced, so the files hold exactly what was acknowledged and the next ``save()`` works once the
cause (a full disk) is gone. If even the rollback fails, the storage stops accepting writes until
it is reopened, because what the disk holds is then unknown.

A snapshot commit writes the snapshot file (temporary name, sync, rename, directory sync), then a
new *rebase* segment holding the hard state and the entries kept after the snapshot, then deletes
the older segments and snapshot. A crash between any two of these steps is finished or undone by
recovery (``recovery.py``); a failure of a step undoes the earlier ones before raising.

Not thread-safe: one caller (the node's Ready loop) at a time.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from kvserver.storage.errors import StorageFullError, StorageIOError
from kvserver.storage.fs import DirLock, FileHandle, FileSystem, OsFileSystem
from kvserver.storage.recovery import recover
from kvserver.storage.segments import (
    SegmentHeader,
    SegmentKind,
    batch_records,
    rebase_segment,
    segment_name,
    write_new_file,
)
from kvserver.storage.snapfile import SnapshotFile, SnapshotFileWriter, snapshot_name
from raftcore.log_image import check_consecutive
from raftcore.raftpb_pb2 import ConfState, Entry, HardState, Member, SnapshotMetadata
from raftcore.storage import SnapshotAbortedError, Storage, StorageError

__all__ = ["DEFAULT_SEGMENT_BYTES", "DiskStorage"]

logger = logging.getLogger("kvserver.storage")

DEFAULT_SEGMENT_BYTES = 64 << 20
LOCK_NAME = "LOCK"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskStorage:
    """A node's durable Raft state in ``data_dir``; implements :class:`raftcore.storage.Storage`.

    Opening recovers the directory (see ``recovery.py``) and takes its lock: raises
    :class:`~kvserver.storage.errors.DataDirLockedError` if another storage holds it,
    :class:`~kvserver.storage.errors.CorruptionError` for damaged files, and
    :class:`~kvserver.storage.errors.StorageIOError` if the file system fails. ``voters`` and
    their ``addresses`` ("host:port" by Raft id) are the configuration of a fresh directory
    (ignored when the directory already holds one; none at all for a node joining a cluster).
    ``fsync=False`` skips every sync: for benchmarks only, a crash then loses acknowledged writes.
    ``segment_bytes``: a segment is closed and a new one started once it has grown past this.
    ``fs`` replaces the real file system (tests inject crashes and full disks through it).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: bool = True,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        voters: Sequence[int] = (),
        addresses: Mapping[int, str] | None = None,
        fs: FileSystem | None = None,
    ) -> None:
        if segment_bytes <= 0:
            raise ValueError(f"segment_bytes must be positive, not {segment_bytes}")
        self._dir = os.fspath(data_dir)
        self._fs: FileSystem = fs if fs is not None else OsFileSystem()
        self._sync = fsync
        self._segment_bytes = segment_bytes
        self._failure: str | None = None
        self._closed = False
        self._tmp_counter = 0
        # Whether the active segment may hold bytes no sync covered.
        self._dirty = False
        if not fsync:
            logger.warning(
                "DiskStorage(%s): fsync is OFF. A crash or power cut can lose acknowledged writes "
                "and break Raft's safety. Use this for benchmarks only.",
                self._dir,
            )
        try:
            self._fs.makedirs(self._dir)
            if fsync:
                # A directory created just now must itself survive a crash.
                self._fs.sync_dir(os.path.dirname(os.path.abspath(self._dir)))
            self._lock: DirLock = self._fs.lock(os.path.join(self._dir, LOCK_NAME))
        except OSError as exc:
            raise _translate(exc, f"opening {self._dir}") from exc
        try:
            recovered = recover(
                self._fs, self._dir, conf_state=birth_conf_state(voters, addresses), sync=fsync
            )
            self._active: FileHandle = self._fs.open_append(
                self._segment_path(recovered.segments[-1])
            )
            if fsync:
                # A previous process may have left unsynced saves in the page cache: what this
                # one read back and will act on must be durable before it acts.
                try:
                    self._active.sync_data()
                except OSError:
                    self._active.close()
                    raise
        except OSError as exc:
            self._lock.release()
            raise _translate(exc, f"recovering {self._dir}") from exc
        except BaseException:
            self._lock.release()
            raise
        self._log = recovered.log
        self._snapshot = recovered.snapshot
        self._segments = recovered.segments
        self._active_size = recovered.active_size

    # -- read half ------------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and the configuration to restart from (copies)."""
        hard_state = HardState()
        hard_state.CopyFrom(self._log.hard_state)
        conf_state = ConfState()
        conf_state.CopyFrom(self._log.base.conf_state)
        return hard_state, conf_state

    def first_index(self) -> int:
        """Index of the first entry in the log: the snapshot's index + 1."""
        return self._log.first_index()

    def last_index(self) -> int:
        """Index of the last entry, or the snapshot's index if the log is empty."""
        return self._log.last_index()

    def term(self, index: int) -> int:
        """Term of the entry at ``index`` (see the contract for the errors)."""
        return self._log.term(index)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``lo .. hi - 1`` from memory (see the contract for ``max_bytes`` and errors)."""
        return self._log.slice(lo, hi, max_bytes)

    def snapshot_metadata(self) -> SnapshotMetadata:
        """Metadata of the snapshot in force (a copy)."""
        metadata = SnapshotMetadata()
        metadata.CopyFrom(self._log.base)
        return metadata

    def snapshot_size(self) -> int:
        """Size in bytes of the snapshot data in force (0 when there is none)."""
        return self._snapshot.data_size if self._snapshot else 0

    def read_snapshot(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of the snapshot data from ``offset``, read from its file."""
        if self._snapshot is None:
            return b""
        try:
            return self._snapshot.read(self._fs, offset, length)
        except OSError as exc:
            raise _translate(exc, f"reading {self._snapshot.path}") from exc

    def entries_in_memory(self) -> int:
        """How many log entries this object holds in memory: only those after the snapshot."""
        return len(self._log.entries)

    # -- write half -----------------------------------------------------------------------------

    def save(
        self, hard_state: HardState | None, entries: Sequence[Entry], *, sync: bool = True
    ) -> None:
        """Durably append ``entries`` then ``hard_state`` with one write and one fdatasync.

        ``sync=False`` writes without the fdatasync (allowed by the contract only for a save
        that changes nothing but the commit index); the next synced save covers its bytes.

        Contract violations raise StorageError and change nothing. A full disk raises
        StorageFullError and any other OS failure StorageIOError; either way the batch was rolled
        back and nothing acknowledged earlier is affected.
        """
        self._check_writable()
        check_consecutive(entries)
        batch = self._log.to_append(entries)
        if hard_state is not None and hard_state == self._log.hard_state:
            hard_state = None
        if not batch and hard_state is None:
            if sync and self._dirty:
                self._sync_active()  # nothing to write, but it must cover earlier unsynced saves
            return
        if self._active_size >= self._segment_bytes:
            self._roll()
        self._append_durably(batch_records(batch, hard_state), sync=sync)
        # Shared, not copied: nothing mutates an Entry once it is in a Ready.
        self._log.append(list(batch))
        if hard_state is not None:
            self._log.hard_state.CopyFrom(hard_state)

    def sync(self) -> None:
        """One fdatasync of the active segment: every earlier save is then durable (``_roll``
        synced each older segment before the next one was created). Safe to call on another
        thread while the owner only reads; a failure stops all further writes (see the
        contract)."""
        self._check_writable()
        self._sync_active()

    def _sync_active(self) -> None:
        if not self._sync:
            return
        try:
            self._active.sync_data()
            self._dirty = False
        except OSError as exc:
            # The kernel may have dropped the dirty pages it failed to write: nothing written
            # since the last good sync can be trusted until the WAL is read back from disk.
            self._fail(f"fdatasync failed: {exc}")
            raise _translate(exc, f"syncing {self._segment_path(self._segments[-1])}") from exc

    def snapshot_writer(self, metadata: SnapshotMetadata) -> _DiskSnapshotWriter:
        """Start streaming a snapshot to a temporary file; see the contract for commit/abort."""
        self._check_writable()
        self._tmp_counter += 1
        tmp_name = f"{snapshot_name(metadata.index)}.{self._tmp_counter}.tmp"
        try:
            file = SnapshotFileWriter(self._fs, self._dir, tmp_name, metadata)
        except OSError as exc:
            _remove_quietly(self._fs, os.path.join(self._dir, tmp_name))
            raise _translate(exc, f"creating snapshot file {tmp_name}") from exc
        return _DiskSnapshotWriter(self, file, metadata)

    def close(self) -> None:
        """Release the files and the directory lock (no sync: an unsynced save stays in the
        kernel's hands, as the contract allows)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._active.close()
        finally:
            self._lock.release()

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _segment_path(self, seq: int) -> str:
        return os.path.join(self._dir, segment_name(seq))

    def _check_writable(self) -> None:
        if self._closed:
            raise StorageError(f"storage for {self._dir} is closed")
        if self._failure is not None:
            raise StorageIOError(
                f"storage for {self._dir} stopped accepting writes after an earlier failure "
                f"({self._failure}); close and reopen it to read back what is durable"
            )

    def _fail(self, reason: str) -> None:
        logger.error("DiskStorage(%s): stopping writes: %s", self._dir, reason)
        self._failure = reason

    def _append_durably(self, data: bytes, *, sync: bool = True) -> None:
        start = self._active_size
        path = self._segment_path(self._segments[-1])
        try:
            self._active.write(data)
        except OSError as exc:
            self._roll_back(start, path)
            raise _translate(exc, f"appending {len(data)} bytes to {path}") from exc
        if self._sync and sync:
            if self._dirty:
                # Earlier unsynced saves precede this batch: a failed fdatasync may have dropped
                # their pages too, which cutting this batch off cannot undo.
                self._active_size = start + len(data)
                self._sync_active()
            else:
                try:
                    self._active.sync_data()
                except OSError as exc:
                    self._roll_back(start, path)
                    raise _translate(exc, f"syncing {len(data)} bytes to {path}") from exc
        self._active_size = start + len(data)
        self._dirty = not sync

    def _roll_back(self, good_size: int, path: str) -> None:
        # Cut the failed batch off: the bytes before good_size were synced by earlier saves.
        try:
            self._active.truncate(good_size)
            if self._sync:
                self._active.sync_data()
                self._dirty = False
        except OSError as exc:
            self._fail(f"could not cut {path} back to its last good offset {good_size}: {exc}")

    def _roll(self) -> None:
        # Unsynced saves (commit-only ones, or a runner's write-then-sync) may sit at the end of
        # the active segment, and sync() only syncs the active one: they must be durable before
        # any record of the next segment can be, or a power cut could tear a segment that is no
        # longer the newest (which recovery rightly calls damage) or leave a gap in the log.
        if self._dirty:
            self._sync_active()
        seq = self._segments[-1] + 1
        header = SegmentHeader(SegmentKind.CONTINUATION, seq, self._log.base).encode()
        self._create_segment(seq, header)
        self._segments.append(seq)
        self._active_size = len(header)
        self._switch_to(seq)

    def _create_segment(self, seq: int, content: bytes) -> None:
        """Durably create segment ``seq``; on failure it does not exist (or the storage stops)."""
        try:
            write_new_file(self._fs, self._dir, segment_name(seq), content, sync=self._sync)
        except StorageIOError as exc:
            self._fail(str(exc))
            raise
        except OSError as exc:
            raise _translate(exc, f"creating segment {segment_name(seq)}") from exc

    def _switch_to(self, seq: int) -> None:
        """Make the (durable, already recorded) segment ``seq`` the one appends go to."""
        try:
            active = self._fs.open_append(self._segment_path(seq))
        except OSError as exc:
            self._fail(f"segment {seq} was created but cannot be opened: {exc}")
            raise _translate(exc, f"opening segment {segment_name(seq)}") from exc
        old, self._active = self._active, active
        self._dirty = False  # segments are born synced
        old.close()

    def _commit_snapshot(self, file: SnapshotFileWriter, metadata: SnapshotMetadata) -> None:
        if self._failure is not None or self._closed:
            file.discard()
            self._check_writable()
        if metadata.index <= self._log.base.index:
            file.discard()
            return
        try:
            installed = file.finish(sync=self._sync)
        except OSError as exc:
            file.discard()
            raise _translate(exc, f"writing snapshot file {file.tmp_path}") from exc
        try:
            self._fs.rename(file.tmp_path, installed.path)
            if self._sync:
                self._fs.sync_dir(self._dir)
        except OSError as exc:
            file.discard()
            self._undo_snapshot(installed.path, exc)
            raise _translate(exc, f"installing snapshot file {installed.path}") from exc
        log = self._log.copy()
        log.install(metadata)
        seq = self._segments[-1] + 1
        content = rebase_segment(seq, log.base, log.hard_state, log.entries)
        try:
            self._create_segment(seq, content)
        except StorageError as exc:
            if self._failure is None:
                self._undo_snapshot(installed.path, exc)
            raise
        # The commit is durable from here on: the in-memory state follows it first.
        old_segments, self._segments = self._segments, [seq]
        old_snapshot, self._snapshot = self._snapshot, installed
        self._log = log
        self._active_size = len(content)
        self._switch_to(seq)
        self._remove_superseded(old_segments, old_snapshot)

    def _undo_snapshot(self, path: str, cause: BaseException) -> None:
        # The snapshot file must not outlive a failed commit: recovery would install it.
        try:
            _remove_if_present(self._fs, path)
            if self._sync:
                self._fs.sync_dir(self._dir)
        except OSError as exc:
            self._fail(f"snapshot commit failed ({cause}) and {path} could not be removed ({exc})")

    def _remove_superseded(self, seqs: list[int], snapshot: SnapshotFile | None) -> None:
        # Failures here lose nothing: recovery removes superseded files at the next open.
        paths = [self._segment_path(seq) for seq in seqs]
        if snapshot is not None:
            paths.append(snapshot.path)
        try:
            for path in paths:
                self._fs.unlink(path)
            if self._sync:
                self._fs.sync_dir(self._dir)
        except OSError as exc:
            logger.warning(
                "%s: could not remove superseded files (%s); the next open will", self._dir, exc
            )


class _DiskSnapshotWriter:
    """Streams one snapshot into a temporary file; commit installs it (see the contract)."""

    def __init__(
        self, storage: DiskStorage, file: SnapshotFileWriter, metadata: SnapshotMetadata
    ) -> None:
        self._storage = storage
        self._file = file
        self._metadata = SnapshotMetadata()
        self._metadata.CopyFrom(metadata)
        self._closed = False

    def write(self, data: bytes) -> None:
        """Append ``data``. A failed write raises StorageFullError or StorageIOError and leaves
        the snapshot as it was, to be written again (the contract); only when the partial write
        cannot be cut off either is the snapshot aborted (SnapshotAbortedError)."""
        self._check_open()
        try:
            self._file.write(bytes(data))
        except OSError as exc:
            error = _translate(exc, f"writing snapshot file {self._file.tmp_path}")
            if self._file.broken:
                self.abort()
                raise SnapshotAbortedError(
                    f"{error}; the partial write could not be cut back, so the snapshot "
                    "was abandoned"
                ) from exc
            raise error from exc

    def commit(self) -> None:
        """Durably install the snapshot and compact the log, as the contract says."""
        self._check_open()
        self._closed = True
        self._storage._commit_snapshot(self._file, self._metadata)

    def abort(self) -> None:
        """Throw the temporary file away; the previous snapshot stays in force."""
        self._closed = True
        self._file.discard()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("snapshot writer is closed")


def birth_conf_state(voters: Sequence[int], addresses: Mapping[int, str] | None) -> ConfState:
    """The configuration a new cluster starts with (its next id follows from the voters)."""
    return ConfState(
        voters=sorted(voters),
        members=[Member(id=i, address=a) for i, a in sorted((addresses or {}).items())],
    )


def _translate(exc: OSError, doing: str) -> StorageIOError:
    """The typed error for an OSError raised while ``doing``."""
    if exc.errno in _FULL_ERRNOS:
        return StorageFullError(
            f"{doing}: the disk is full ({exc.strerror}). Nothing acknowledged was lost; writes "
            "work again once space is freed",
            exc.errno,
        )
    return StorageIOError(f"{doing}: {exc}", exc.errno)


def _remove_if_present(fs: FileSystem, path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fs.unlink(path)


def _remove_quietly(fs: FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):
        fs.unlink(path)


if TYPE_CHECKING:
    # mypy proves here that DiskStorage honours the whole storage contract.
    _CONTRACT: type[Storage] = DiskStorage
