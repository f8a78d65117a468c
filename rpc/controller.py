"""RpcController: the state of one call, on either side of the wire.

Caller side: pass one to a call to learn afterwards whether it failed and why, to read its
deadline, and to cancel it while it is pending (the awaiting caller then gets RpcCancelledError;
the original's cancel was a no-op). Server side: the provider hands one to every handler, with the
caller's deadline; a handler may call ``set_failed`` to answer with an error status instead of a
response.
"""

from __future__ import annotations

from collections.abc import Callable

from rpc.errors import RpcError, RpcRemoteError, Status


class RpcController:
    """Per-call state: failure, error text, status, deadline and cancellation.

    A controller serves one call at a time; ``reset`` makes it reusable. ``deadline`` is in the
    event loop's clock (``loop.time()``), or None when the call has no deadline.
    """

    __slots__ = ("_cancelled", "_canceller", "_error_text", "_failed", "deadline", "status")

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self.status: Status | None = None
        self._failed = False
        self._error_text = ""
        self._cancelled = False
        # Set by RpcChannel while the call is pending: fails that call with RpcCancelledError.
        self._canceller: Callable[[], None] | None = None

    def failed(self) -> bool:
        """True when the call failed (locally, remotely, or by ``set_failed``)."""
        return self._failed

    def error_text(self) -> str:
        """Why the call failed; empty when it did not."""
        return self._error_text

    def set_failed(self, text: str) -> None:
        """Mark the call failed; a handler doing this answers its caller with HANDLER_ERROR."""
        self._failed = True
        self._error_text = text

    def cancel(self) -> None:
        """Cancel the call: a pending call fails at once with RpcCancelledError, a call not yet
        started fails when it starts."""
        self._cancelled = True
        if self._canceller is not None:
            self._canceller()

    def is_cancelled(self) -> bool:
        """True once ``cancel`` was called (until ``reset``)."""
        return self._cancelled

    def reset(self) -> None:
        """Forget the previous call's outcome so the controller can serve another call."""
        self.deadline = None
        self.status = None
        self._failed = False
        self._error_text = ""
        self._cancelled = False
        self._canceller = None

    def _record_error(self, exc: RpcError) -> None:
        """Caller side: remember how the call failed."""
        self.set_failed(str(exc))
        if isinstance(exc, RpcRemoteError):
            self.status = exc.status
