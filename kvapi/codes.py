"""Every ``Err`` string a kvServerRpc reply can carry, defined once for servers and clients.

The first three are the original C++ protocol's and the only ones its clerk knows; the others are
raftkv's (docs/wire-protocol.md, docs/sessions.md).
"""

from __future__ import annotations

__all__ = [
    "ERR_BAD_COMMAND",
    "ERR_BAD_REQUEST",
    "ERR_CAS_MISMATCH",
    "ERR_KEY_EXISTS",
    "ERR_NO_KEY",
    "ERR_SESSION_EXPIRED",
    "ERR_STALE_REQUEST",
    "ERR_STORAGE_UNAVAILABLE",
    "ERR_TIMEOUT",
    "ERR_WRONG_LEADER",
    "OK",
]

OK = "OK"
ERR_NO_KEY = "ErrNoKey"
ERR_WRONG_LEADER = "ErrWrongLeader"
#: The request's entry was not applied in time (outcome unknown to the server too): ask again.
ERR_TIMEOUT = "ErrTimeout"
#: The node cannot persist right now (its disk failed); it refuses new work until it recovers.
ERR_STORAGE_UNAVAILABLE = "ErrStorageUnavailable"
#: The request is malformed or too large; asking again cannot help.
ERR_BAD_REQUEST = "ErrBadRequest"
#: A committed entry that is not a command: every node refuses it the same way.
ERR_BAD_COMMAND = "ErrBadCommand"
#: PutIfAbsent on a present key.
ERR_KEY_EXISTS = "ErrKeyExists"
#: CompareAndSwap whose expectation failed (the reply holds the current value).
ERR_CAS_MISMATCH = "ErrCasMismatch"
#: A request id below the client's acknowledged mark: its answer is no longer kept.
ERR_STALE_REQUEST = "ErrStaleRequest"
#: The client's session expired: the write was not executed (docs/sessions.md).
ERR_SESSION_EXPIRED = "ErrSessionExpired"
