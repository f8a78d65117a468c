"""How the clerk reads the servers' answers: Err codes into results or typed errors.

The codes are the protocol's, defined once in :mod:`kvapi.codes`; the errors are
:mod:`clerk.errors`'.
"""

from __future__ import annotations

from clerk.errors import OperationTimeoutError, error_for
from clerk.results import ConditionalResult
from kvapi import kvserver_rpc_pb2 as pb
from kvapi.codes import Err

__all__ = ["conditional", "get_value", "require_ok", "timeout_error"]


def timeout_error(
    method: str, key: bytes, budget: float, asks: int, last_error: str
) -> OperationTimeoutError:
    """The error for ``method`` on ``key`` whose deadline ``budget`` (s) passed after ``asks``."""
    is_write = method not in ("Get", "Scan")
    consequence = (
        "the outcome is UNKNOWN: the write may or may not have taken effect"
        if is_write
        else "the read had no effect"
    )
    shown = repr(key) if len(key) <= 40 else f"{key[:40]!r}..."
    return OperationTimeoutError(
        f"{method} {shown} got no answer within {budget:g}s ({asks} asks; last: {last_error}); "
        f"{consequence}",
        outcome_unknown=is_write,
    )


def require_ok(operation: str, err_bytes: bytes) -> None:
    """Nothing for OK; the typed error for any other final code."""
    err = Err.from_wire(err_bytes)
    if err is not Err.OK:
        raise error_for(operation, err)


def conditional(
    operation: str,
    err_bytes: bytes,
    value: bytes,
    *,
    ok_previous: bytes | None,
    refusals: tuple[Err, ...],
) -> ConditionalResult:
    """A conditional write's result: applied on OK, refused on an Err in ``refusals`` (with the
    value that made it refuse), else the typed error."""
    err = Err.from_wire(err_bytes)
    if err is Err.OK:
        return ConditionalResult(True, ok_previous)
    if err in refusals:
        return ConditionalResult(False, None if err is Err.NO_KEY else value)
    raise error_for(operation, err)


def get_value(reply: pb.GetReply) -> bytes | None:
    """A Get's value: None for ErrNoKey; the typed error for any other failing code."""
    err = Err.from_wire(reply.Err)
    if err is Err.OK:
        return reply.Value
    if err is Err.NO_KEY:
        return None
    raise error_for("get", err)
