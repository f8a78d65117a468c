"""History records: one per client operation, validated, and their JSON-lines form.

A history is a list of :class:`Operation` records. Each names the operation and its arguments,
what the client saw (``output``), when it was invoked and when it returned (monotonic
nanoseconds), and a status:

- ``ok``: the client saw ``output``; the operation took effect once, between call and return.
- ``fail``: the operation certainly had no effect (the checker drops it).
- ``unknown``: the client gave up (timeout, crash): the operation may never take effect, or take
  effect at any time after its call, even after every other operation. Its ``return`` is ignored
  (the checker treats it as +infinity) and may be ``null``.

On disk a history is JSON lines, one object per operation with exactly the fields
``client_id, op, key, value, output, call, return, status`` (``return`` is ``ret`` in Python
because ``return`` is a keyword).

Keys and values are ``str``. Bytes are represented by decoding them as latin-1
(:func:`bytes_to_str`): byte n becomes code point n, so the mapping is lossless, ASCII stays
readable, and string order equals byte order (which scan ranges rely on).

Arguments and outputs per operation (``output`` is checked only when the status is ``ok``; for
``fail`` and ``unknown`` it must be ``null``):

- ``get``: value ``null``; output the value, or ``null`` for a missing key.
- ``put``: value the new value; output ``null``.
- ``append``: value the suffix (a missing key counts as ``""``); output ``null``.
- ``delete``: value ``null``; output ``true`` iff the key existed and was removed.
- ``put_if_absent``: value the value; output ``true`` iff stored (the key was missing).
- ``update``: value the new value; output ``true`` iff stored (the key existed).
- ``cas``: value ``[expected, new]``; output ``true`` iff the key existed with value
  ``expected`` and now holds ``new`` (a missing key never matches).
- ``scan``: ``key`` is the start, value ``[end, limit]``; output ``[[key, value], ...]``, the
  present keys ``k`` with ``start <= k < end`` in ascending order, at most ``limit`` pairs
  (``end`` ``null``: no upper bound; ``limit`` ``null``: no limit, else a positive integer).

The store is assumed empty when the history starts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeAlias

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None
ClientId: TypeAlias = str | int

FIELDS = ("client_id", "op", "key", "value", "output", "call", "return", "status")


class HistoryError(ValueError):
    """A record or a history that breaks the format described in this module."""


class HistoryFormatError(HistoryError):
    """A malformed line in a JSON-lines history; ``line_number`` counts from 1."""

    def __init__(self, source: str, line_number: int, reason: str) -> None:
        super().__init__(f"{source}:{line_number}: {reason}")
        self.source = source
        self.line_number = line_number
        self.reason = reason


class OpKind(StrEnum):
    """The operations of the KV service that a history may contain."""

    GET = "get"
    PUT = "put"
    APPEND = "append"
    DELETE = "delete"
    PUT_IF_ABSENT = "put_if_absent"
    UPDATE = "update"
    CAS = "cas"
    SCAN = "scan"


class Status(StrEnum):
    """What the client knows about an operation's outcome (see the module docstring)."""

    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


# Operations whose value is a single string, and those whose ok output is a bool.
_STRING_VALUE_OPS = frozenset({OpKind.PUT, OpKind.APPEND, OpKind.PUT_IF_ABSENT, OpKind.UPDATE})
_BOOL_OUTPUT_OPS = frozenset({OpKind.DELETE, OpKind.PUT_IF_ABSENT, OpKind.UPDATE, OpKind.CAS})
# Operations that change nothing: when their outcome is unknown they carry no information.
READ_ONLY_OPS = frozenset({OpKind.GET, OpKind.SCAN})


def bytes_to_str(data: bytes) -> str:
    """Represent ``data`` as a history string (latin-1: byte n becomes code point n)."""
    return data.decode("latin-1")


def str_to_bytes(text: str) -> bytes:
    """Invert :func:`bytes_to_str`; raises :class:`HistoryError` for a code point above 255."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise HistoryError(f"not a latin-1 byte string: {text!r}") from exc


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_value(op: OpKind, value: Json) -> None:
    if op in _STRING_VALUE_OPS:
        if not isinstance(value, str):
            raise HistoryError(f"{op} needs a string value, got {value!r}")
    elif op is OpKind.CAS:
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            raise HistoryError(f"cas needs value [expected, new] (two strings), got {value!r}")
    elif op is OpKind.SCAN:
        if not (isinstance(value, list) and len(value) == 2):
            raise HistoryError(f"scan needs value [end, limit], got {value!r}")
        end, limit = value
        if end is not None and not isinstance(end, str):
            raise HistoryError(f"scan end must be a string or null, got {end!r}")
        if limit is not None and not (
            isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
        ):
            raise HistoryError(f"scan limit must be a positive integer or null, got {limit!r}")
    elif value is not None:
        raise HistoryError(f"{op} takes no value (null), got {value!r}")


def _check_output(op: OpKind, output: Json) -> None:
    if op is OpKind.GET:
        ok = output is None or isinstance(output, str)
        expected = "a string or null"
    elif op in _BOOL_OUTPUT_OPS:
        ok = isinstance(output, bool)
        expected = "true or false"
    elif op is OpKind.SCAN:
        ok = isinstance(output, list) and all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
            for pair in output
        )
        expected = "a list of [key, value] string pairs"
    else:
        ok = output is None
        expected = "null"
    if not ok:
        raise HistoryError(f"{op} with status ok needs output {expected}, got {output!r}")


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation; construction validates it against the module's table.

    ``ret`` is the JSON field ``return``. ``call`` and ``ret`` are monotonic nanoseconds from one
    clock shared by every client of the history. Raises :class:`HistoryError` on a bad record.
    """

    client_id: ClientId
    op: OpKind
    key: str
    value: Json
    output: Json
    call: int
    ret: int | None
    status: Status

    def __post_init__(self) -> None:
        if not (isinstance(self.client_id, str) or _is_int(self.client_id)):
            raise HistoryError(f"client_id must be a string or integer, got {self.client_id!r}")
        if not isinstance(self.op, OpKind):
            raise HistoryError(f"op must be an OpKind, got {self.op!r}")
        if not isinstance(self.status, Status):
            raise HistoryError(f"status must be a Status, got {self.status!r}")
        if not isinstance(self.key, str):
            raise HistoryError(f"key must be a string, got {self.key!r}")
        _check_value(self.op, self.value)
        if not _is_int(self.call):
            raise HistoryError(f"call must be integer nanoseconds, got {self.call!r}")
        if self.ret is None:
            if self.status is not Status.UNKNOWN:
                raise HistoryError(f"a {self.status} operation needs a return time")
        elif not _is_int(self.ret):
            raise HistoryError(f"return must be integer nanoseconds or null, got {self.ret!r}")
        elif self.ret < self.call:
            raise HistoryError(f"return {self.ret} precedes call {self.call}")
        if self.status is Status.OK:
            _check_output(self.op, self.output)
        elif self.output is not None:
            raise HistoryError(
                f"a {self.status} operation has no output (null), got {self.output!r}"
            )

    @property
    def effective_return(self) -> float:
        """The return time the checker uses: ``ret``, or +infinity when the outcome is unknown."""
        if self.status is Status.UNKNOWN or self.ret is None:
            return math.inf
        return self.ret

    def to_json(self) -> dict[str, Json]:
        """The record as a JSON object with the fields of :data:`FIELDS`, in that order."""
        return {
            "client_id": self.client_id,
            "op": self.op.value,
            "key": self.key,
            "value": self.value,
            "output": self.output,
            "call": self.call,
            "return": self.ret,
            "status": self.status.value,
        }

    @classmethod
    def from_json(cls, obj: object) -> Operation:
        """Build a record from a decoded JSON object; raises :class:`HistoryError` if malformed."""
        if not isinstance(obj, dict):
            raise HistoryError(f"a record must be a JSON object, got {type(obj).__name__}")
        missing = [f for f in FIELDS if f not in obj]
        if missing:
            raise HistoryError(f"missing field(s): {', '.join(missing)}")
        extra = sorted(set(obj) - set(FIELDS))
        if extra:
            raise HistoryError(f"unknown field(s): {', '.join(extra)}")
        try:
            op = OpKind(obj["op"])
        except ValueError:
            known = ", ".join(k.value for k in OpKind)
            raise HistoryError(f"unknown op {obj['op']!r} (known: {known})") from None
        try:
            status = Status(obj["status"])
        except ValueError:
            raise HistoryError(
                f"unknown status {obj['status']!r} (known: ok, fail, unknown)"
            ) from None
        return cls(
            client_id=obj["client_id"],
            op=op,
            key=obj["key"],
            value=obj["value"],
            output=obj["output"],
            call=obj["call"],
            ret=obj["return"],
            status=status,
        )

    def describe(self) -> str:
        """A one-line human summary, e.g. ``client 3: get('x') -> 'a' [ok, 120..340 ns]``."""
        args = repr(self.key) if self.value is None else f"{self.key!r}, {self.value!r}"
        shown = "?" if self.status is not Status.OK else repr(self.output)
        end = "inf" if self.ret is None else str(self.ret)
        timing = f"[{self.status}, {self.call}..{end} ns]"
        return f"client {self.client_id}: {self.op}({args}) -> {shown} {timing}"


def dumps_operation(operation: Operation) -> str:
    """One JSON line (without the newline) for ``operation``; non-ASCII is written as escapes."""
    return json.dumps(operation.to_json(), ensure_ascii=True, allow_nan=False)


def parse_history(lines: Iterable[str], source: str = "<history>") -> list[Operation]:
    """Parse JSON lines; blank lines are skipped.

    Raises :class:`HistoryFormatError` naming ``source`` and the 1-based line number of the first
    malformed line.
    """
    operations: list[Operation] = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryFormatError(source, line_number, f"invalid JSON: {exc.msg}") from exc
        try:
            operations.append(Operation.from_json(obj))
        except HistoryError as exc:
            raise HistoryFormatError(source, line_number, str(exc)) from exc
    return operations


def read_history(path: str | Path) -> list[Operation]:
    """Read a JSON-lines history file (UTF-8); see :func:`parse_history` for errors."""
    with open(path, encoding="utf-8") as handle:
        return parse_history(handle, source=str(path))


def iter_lines(operations: Iterable[Operation]) -> Iterator[str]:
    """The JSON lines of ``operations``, each ending in a newline."""
    for operation in operations:
        yield dumps_operation(operation) + "\n"


def write_history(path: str | Path, operations: Iterable[Operation]) -> None:
    """Write ``operations`` as JSON lines to ``path``, replacing it."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(iter_lines(operations))
