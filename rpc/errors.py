"""The RPC error hierarchy: every failure a caller can see, split into local and remote ones.

Local errors happen on this side of the wire (the call timed out, the connection failed, the
frame could not be encoded or decoded). A remote error is a status the server sent back for one
call; the connection it came over stays usable. Nothing here does I/O, so the sans-I/O codec
can raise these too.
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """Outcome of one call, as carried by a framed response (mirrors ``RPC.RpcStatus``)."""

    OK = 0
    UNKNOWN_SERVICE = 1
    UNKNOWN_METHOD = 2
    BAD_REQUEST = 3
    HANDLER_ERROR = 4
    DEADLINE_EXCEEDED = 5
    SHUTTING_DOWN = 6


class RpcError(Exception):
    """Base of every error the RPC layer raises."""


class RpcLocalError(RpcError):
    """The call failed on this side; the server may or may not have seen it."""


class RpcTimeoutError(RpcLocalError, TimeoutError):
    """The call's deadline passed before a reply arrived."""


class RpcConnectionError(RpcLocalError, ConnectionError):
    """No connection to the peer, or it was lost while the call was pending."""


class RpcCancelledError(RpcLocalError):
    """The call was cancelled through its RpcController."""


class RpcBadResponseError(RpcLocalError):
    """The server's reply does not parse as the method's response message."""


class FrameError(RpcLocalError, ValueError):
    """A byte stream that is not a valid sequence of frames; the stream cannot be resynchronised."""


class FrameTooLargeError(FrameError):
    """A frame declares (or would have) more bytes than the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class MalformedVarintError(FrameError):
    """A length prefix that is not a valid varint32."""


class MalformedHeaderError(FrameError):
    """A frame header that does not parse or is inconsistent."""


class RpcRemoteError(RpcError):
    """The server answered the call with an error status.

    ``status`` says what kind of failure it was; ``text`` is the server's explanation.
    """

    def __init__(self, status: Status, text: str) -> None:
        super().__init__(f"{status.name}: {text}" if text else status.name)
        self.status = status
        self.text = text
