"""How the clerk reads the servers' answers: Err strings into results or errors.

The Err strings are the protocol's, defined once in :mod:`kvapi.codes`.
"""

from __future__ import annotations

from typing import Any, cast

from google.protobuf.message import Message

from clerk.errors import OperationTimeoutError, ServerError, SessionExpiredError
from clerk.results import ConditionalResult
from kvapi import kvserver_rpc_pb2 as pb
from kvapi.codes import ERR_BAD_REQUEST, ERR_NO_KEY, ERR_STALE_REQUEST

__all__ = [
    "certainly_no_effect",
    "conditional",
    "get_value",
    "timeout_error",
]


def certainly_no_effect(exc: BaseException) -> bool:
    """True for a failed write that certainly did not execute: refused by the servers, or by the
    clerk's own argument checks before anything was sent."""
    if isinstance(exc, ValueError | TypeError):
        return True
    if isinstance(exc, SessionExpiredError):
        return not exc.outcome_unknown
    return isinstance(exc, ServerError) and exc.err in (ERR_BAD_REQUEST, ERR_STALE_REQUEST)


def timeout_error(
    method: str, request: Message, budget: float, asks: int, last_error: str
) -> OperationTimeoutError:
    """The error for ``method`` whose deadline ``budget`` (s) passed after ``asks`` asks."""
    is_write = method not in ("Get", "Scan")
    consequence = (
        "the outcome is UNKNOWN: the write may or may not have taken effect"
        if is_write
        else "the read had no effect"
    )
    key = request.Start if isinstance(request, pb.ScanArgs) else cast(Any, request).Key
    shown = repr(key) if len(key) <= 40 else f"{key[:40]!r}..."
    return OperationTimeoutError(
        f"{method} {shown} got no answer within {budget:g}s ({asks} asks; last: {last_error}); "
        f"{consequence}",
        outcome_unknown=is_write,
    )


def conditional(
    operation: str,
    err_bytes: bytes,
    value: bytes,
    *,
    ok_previous: bytes | None,
    refusals: tuple[str, ...],
) -> ConditionalResult:
    """A conditional write's result: applied on OK, refused on an Err in ``refusals`` (with the
    value that made it refuse), else ServerError."""
    err = err_bytes.decode(errors="replace")
    if err == "OK":
        return ConditionalResult(True, ok_previous)
    if err in refusals:
        return ConditionalResult(False, None if err == ERR_NO_KEY else value)
    raise ServerError(operation, err)


def get_value(reply: pb.GetReply) -> bytes | None:
    """A Get's value: None for ErrNoKey; ServerError for any other Err."""
    err = reply.Err.decode(errors="replace")
    if err == "OK":
        return reply.Value
    if err == ERR_NO_KEY:
        return None
    raise ServerError("get", err)
