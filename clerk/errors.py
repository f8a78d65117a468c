"""The errors a clerk raises: an operation that ran out of time, a write refused because the
servers forgot the clerk's session, and an answer it cannot use."""

from __future__ import annotations

from kvapi.codes import ERR_SESSION_EXPIRED

__all__ = ["ClerkError", "OperationTimeoutError", "ServerError", "SessionExpiredError"]


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


class SessionExpiredError(ClerkError):
    """The servers refused a write (``ErrSessionExpired``): they no longer hold this clerk's
    session, so they cannot tell whether an earlier copy of the write was executed, and did not
    execute it again. The clerk has started a new session for its next operations.

    ``outcome_unknown`` is True when an earlier copy was sent (this was a retry): the write may
    have taken effect before the session expired, exactly once. False means the refused copy was
    the only one sent: the write had no effect. ``err`` is ``"ErrSessionExpired"``.
    """

    err = ERR_SESSION_EXPIRED

    def __init__(self, operation: str, *, outcome_unknown: bool) -> None:
        consequence = (
            "the outcome is UNKNOWN: an earlier copy may have taken effect, once"
            if outcome_unknown
            else "the write had no effect"
        )
        super().__init__(
            f"{operation} refused: the servers no longer hold this clerk's session "
            f"(ErrSessionExpired); {consequence}; it was not executed again"
        )
        self.operation = operation
        self.outcome_unknown = outcome_unknown
