"""The errors a clerk raises: an operation that ran out of time, and an answer it cannot use."""

from __future__ import annotations

__all__ = ["ClerkError", "OperationTimeoutError", "ServerError"]


class ClerkError(Exception):
    """Base of the errors the clerk raises (bad arguments raise ValueError/TypeError instead)."""


class OperationTimeoutError(ClerkError, TimeoutError):
    """An operation got no final answer before its deadline.

    For a write the outcome is UNKNOWN: it may or may not have taken effect (``outcome_unknown``
    is True and the message says so). A read that times out had no effect.
    """

    def __init__(self, message: str, *, outcome_unknown: bool) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class ServerError(ClerkError):
    """A server answered with an Err the operation cannot turn into a result.

    ``err`` is the server's Err string, e.g. ``ErrBadRequest`` (invalid arguments),
    ``ErrStaleRequest`` (a request id the server had already moved past: the request had no
    effect), or a method the server does not implement (an older server).
    """

    def __init__(self, operation: str, err: str) -> None:
        super().__init__(f"{operation} failed: the server answered {err}")
        self.operation = operation
        self.err = err
