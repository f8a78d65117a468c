"""Linearizability histories for raftkv and an exact checker (Wing-Gong / Lowe search, per key).

Record a history with :class:`HistoryRecorder`, save or load it as JSON lines
(:func:`write_history`, :func:`read_history`), and check it with :func:`check_history`, or with
:func:`assert_linearizable` in tests.
``python -m lincheck HISTORY.jsonl`` does the same from a shell.
"""

from lincheck.checker import (
    CheckResult,
    LinearizabilityError,
    Unplaced,
    Verdict,
    Witness,
    assert_linearizable,
    check_history,
)
from lincheck.history import (
    FIELDS,
    ClientId,
    HistoryError,
    HistoryFormatError,
    Json,
    Operation,
    OpKind,
    Status,
    bytes_to_str,
    dumps_operation,
    parse_history,
    read_history,
    str_to_bytes,
    write_history,
)
from lincheck.recorder import HistoryRecorder, PendingOperation

__all__ = [
    "FIELDS",
    "CheckResult",
    "ClientId",
    "HistoryError",
    "HistoryFormatError",
    "HistoryRecorder",
    "Json",
    "LinearizabilityError",
    "OpKind",
    "Operation",
    "PendingOperation",
    "Status",
    "Unplaced",
    "Verdict",
    "Witness",
    "assert_linearizable",
    "bytes_to_str",
    "check_history",
    "dumps_operation",
    "parse_history",
    "read_history",
    "str_to_bytes",
    "write_history",
]
