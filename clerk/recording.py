"""How a clerk records its operations for the linearizability checker (:mod:`lincheck`).

An answered operation is ``ok`` with its output; a write that failed without a sure "not
applied" (:class:`clerk.errors.NotAppliedError`) is ``unknown``; a failed read, or a write that
certainly had no effect, is ``fail``. Without a history nothing is recorded, at no cost.
"""

from __future__ import annotations

from typing import TypeAlias

from clerk.errors import NotAppliedError
from lincheck import HistoryRecorder, Json, Status, bytes_to_str

__all__ = [
    "NOT_RECORDING",
    "NotRecording",
    "Recordable",
    "Recording",
    "certainly_no_effect",
    "record",
]

Recordable: TypeAlias = bytes | bool | int | str | list["Recordable"] | None
"""An operation's input or output as the clerk has it: bytes become JSON strings only when a
history is being recorded, so a clerk without one pays nothing for it."""


def certainly_no_effect(exc: BaseException) -> bool:
    """True for a failed write that certainly did not execute: refused by the servers, or by the
    clerk's own argument checks before anything was sent."""
    return isinstance(exc, NotAppliedError | ValueError | TypeError)


def _to_json(value: Recordable) -> Json:
    if isinstance(value, bytes):
        return bytes_to_str(value)
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    return value


class NotRecording:
    """What an operation records into when there is no history: nothing."""

    __slots__ = ()

    @property
    def output(self) -> Recordable:
        return None

    @output.setter
    def output(self, value: Recordable) -> None:
        pass

    def __enter__(self) -> NotRecording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


NOT_RECORDING = NotRecording()


class Recording:
    """Records one operation in a HistoryRecorder: call on entry, its return on exit."""

    def __init__(
        self, history: HistoryRecorder, client: str, op: str, key: bytes, value: Recordable
    ) -> None:
        self._history = history
        self._write = op not in ("get", "scan")
        self._handle = history.call(client, op, bytes_to_str(key), _to_json(value))
        self.output: Recordable = None

    def __enter__(self) -> Recording:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            self._history.ret(self._handle, _to_json(self.output))
        elif self._write and not certainly_no_effect(exc):
            self._history.ret(self._handle, status=Status.UNKNOWN)
        else:
            self._history.ret(self._handle, status=Status.FAIL)


def record(
    history: HistoryRecorder | None, client: bytes, op: str, key: bytes, value: Recordable
) -> Recording | NotRecording:
    """A context recording ``op`` by ``client`` into ``history`` (nothing when it is None)."""
    if history is None:
        return NOT_RECORDING
    return Recording(history, client.hex(), op, key, value)
