"""The errors a clerk raises, one class per way an operation can fail.

Every failure says what it means for the store. :class:`NotAppliedError` (a base class): the
operation certainly had no effect, and sending it again is a new operation.
:class:`OutcomeUnknownError`: a write that may or may not have taken effect (exactly once if it
did); only reading the key can tell. So a caller can write::

    try:
        await kv.put("k", "v")
    except NotAppliedError:
        ...  # nothing happened
    except OutcomeUnknownError:
        ...  # maybe it happened

Every ``Err`` code a server answers maps to one class (:data:`RAISED_FOR`): the retryable codes
(``ErrWrongLeader``, ``ErrTimeout``, ``ErrStorageUnavailable``) are asked again with backoff until
the operation's deadline, then :class:`OperationTimeoutError`; the results (``ErrNoKey``,
``ErrKeyExists``, ``ErrCasMismatch``) are values, and an error only from an operation that
cannot answer so (:class:`UnexpectedReplyError`). Bad arguments raise ValueError/TypeError
before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kvapi.codes import Err

__all__ = [
    "RAISED_FOR",
    "BadCommandError",
    "BadRequestError",
    "ClerkError",
    "ConfChangeRefusedError",
    "NotAppliedError",
    "OperationTimeoutError",
    "OutcomeUnknownError",
    "RpcRefusedError",
    "ServerError",
    "SessionExpiredError",
    "StaleRequestError",
    "UnexpectedReplyError",
    "error_for",
]


class ClerkError(Exception):
    """Base of the errors the clerk raises (bad arguments raise ValueError/TypeError instead)."""


class NotAppliedError(ClerkError):
    """The operation certainly had no effect on the store."""


class ConfChangeRefusedError(NotAppliedError):
    """The leader refused a membership change (``ErrConfChangeRefused``, or
    ``ErrConfChangeNotYet`` with ``not_yet`` True: it may succeed later, a change still pending
    or a learner still catching up); nothing changed. The message is the leader's reason."""

    def __init__(self, message: str, *, not_yet: bool) -> None:
        super().__init__(message)
        self.not_yet = not_yet


class OutcomeUnknownError(ClerkError):
    """The write may or may not have taken effect (if it did, exactly once)."""


class OperationTimeoutError(ClerkError, TimeoutError):
    """An operation got no final answer before its deadline: every ask failed, timed out, or was
    answered with a retryable code (``ErrWrongLeader``, ``ErrTimeout``, ``ErrStorageUnavailable``).

    For a write the outcome is UNKNOWN (``outcome_unknown`` True, the error is an
    :class:`OutcomeUnknownError`, the message says so); a read that timed out had no effect
    (a :class:`NotAppliedError`).
    """

    def __new__(cls, message: str, *, outcome_unknown: bool) -> OperationTimeoutError:
        if cls is OperationTimeoutError:
            cls = _WriteTimeoutError if outcome_unknown else _ReadTimeoutError
        return super().__new__(cls, message)

    def __init__(self, message: str, *, outcome_unknown: bool) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class _WriteTimeoutError(OperationTimeoutError, OutcomeUnknownError):
    pass


class _ReadTimeoutError(OperationTimeoutError, NotAppliedError):
    pass


class ServerError(ClerkError):
    """A server answered with an Err the operation cannot turn into a result.

    ``operation`` is the clerk's operation (e.g. ``put``) and ``err`` the server's answer: an Err
    code, or for :class:`RpcRefusedError` the RPC status and its text.
    """

    def __init__(self, operation: str, err: str) -> None:
        super().__init__(f"{operation} failed: the server answered {err}")
        self.operation = operation
        self.err = err


class BadRequestError(ServerError, NotAppliedError):
    """``ErrBadRequest``: the arguments are invalid or too large; asking again cannot help."""


class BadCommandError(ServerError, NotAppliedError):
    """``ErrBadCommand``: the committed entry was not a command every node could execute."""


class StaleRequestError(ServerError, NotAppliedError):
    """``ErrStaleRequest``: a request id the servers had already moved past; it had no effect."""


class RpcRefusedError(ServerError, NotAppliedError):
    """The server's RPC layer refused the call before any handler ran: it does not serve the
    method (an older server) or could not parse the request."""


class UnexpectedReplyError(ServerError, OutcomeUnknownError):
    """An Err this operation never answers: a code of a newer server, or a result that makes no
    sense for it. For a write the outcome is unknown; a read never changes the store."""


class SessionExpiredError(ClerkError):
    """The servers refused a write (``ErrSessionExpired``): they no longer hold this clerk's
    session, so they cannot tell whether an earlier copy of the write was executed, and did not
    execute it again. The clerk has started a new session for its next operations.

    ``outcome_unknown`` is True when an earlier copy was sent (this was a retry): the write may
    have taken effect before the session expired, exactly once, and the error is an
    :class:`OutcomeUnknownError`. False means the refused copy was the only one sent: the write
    had no effect (a :class:`NotAppliedError`). ``err`` is ``Err.SESSION_EXPIRED``.
    """

    err = Err.SESSION_EXPIRED

    def __new__(cls, operation: str, *, outcome_unknown: bool) -> SessionExpiredError:
        if cls is SessionExpiredError:
            cls = _SessionExpiredUnknown if outcome_unknown else _SessionExpiredNotApplied
        return super().__new__(cls, operation)

    def __init__(self, operation: str, *, outcome_unknown: bool) -> None:
        consequence = (
            "the outcome is UNKNOWN: an earlier copy may have taken effect, once"
            if outcome_unknown
            else "the write had no effect"
        )
        super().__init__(
            f"{operation} refused: the servers no longer hold this clerk's session "
            f"({Err.SESSION_EXPIRED}); {consequence}; it was not executed again"
        )
        self.operation = operation
        self.outcome_unknown = outcome_unknown


class _SessionExpiredUnknown(SessionExpiredError, OutcomeUnknownError):
    pass


class _SessionExpiredNotApplied(SessionExpiredError, NotAppliedError):
    pass


RAISED_FOR: Mapping[Err, type[ClerkError]] = {
    Err.WRONG_LEADER: OperationTimeoutError,
    Err.TIMEOUT: OperationTimeoutError,
    Err.STORAGE_UNAVAILABLE: OperationTimeoutError,
    Err.BAD_REQUEST: BadRequestError,
    Err.BAD_COMMAND: BadCommandError,
    Err.STALE_REQUEST: StaleRequestError,
    Err.SESSION_EXPIRED: SessionExpiredError,
    Err.NO_KEY: UnexpectedReplyError,
    Err.KEY_EXISTS: UnexpectedReplyError,
    Err.CAS_MISMATCH: UnexpectedReplyError,
    Err.CONF_CHANGE_REFUSED: ConfChangeRefusedError,
    Err.CONF_CHANGE_NOT_YET: ConfChangeRefusedError,
}
"""What the clerk raises for each failing Err code: the retryable ones once the deadline passes
(they are asked again until then); the results only where the operation cannot answer so."""

_SERVER_ERRORS: dict[Any, type[ServerError]] = {
    err: cls for err, cls in RAISED_FOR.items() if issubclass(cls, ServerError)
}


def error_for(operation: str, err: Err | str) -> ServerError:
    """The error for ``operation`` answered ``err``, a final code that is not its result."""
    return _SERVER_ERRORS.get(err, UnexpectedReplyError)(operation, err)
