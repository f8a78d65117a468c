"""Every ``Err`` string a kvServerRpc reply can carry, defined once for servers and clients.

Each code says what a client may conclude from it: whether asking again (another server, or
the same one later, with the same RequestId) can help (:attr:`Err.retryable`), and whether the
answered copy of the request certainly had no effect (:attr:`Err.outcome_unknown` False) or
may have (True: only ``ErrTimeout``, where the server itself does not know). ``OK`` and the
refusals that carry a result (``ErrNoKey``, ``ErrKeyExists``, ``ErrCasMismatch``) are answers,
not failures.

The first three are the original C++ protocol's and the only ones its clerk knows; the others are
raftkv's (docs/wire-protocol.md, docs/sessions.md). The values are the wire strings, byte for
byte: an ``Err`` is a ``str``, and ``.wire`` is its bytes as a reply carries them.
"""

from __future__ import annotations

import enum

__all__ = ["Err"]


class Err(enum.StrEnum):
    """A reply code: its wire string, whether retrying can help, whether the outcome is unknown."""

    retryable: bool
    outcome_unknown: bool
    wire: bytes

    def __new__(cls, value: str, retryable: bool = False, outcome_unknown: bool = False) -> Err:
        member = str.__new__(cls, value)
        member._value_ = value
        member.retryable = retryable
        member.outcome_unknown = outcome_unknown
        member.wire = value.encode()
        return member

    OK = "OK"
    #: Get/Delete/Update/CompareAndSwap on an absent key (a result: the store is unchanged).
    NO_KEY = "ErrNoKey"
    #: The server is not the leader, or its entry was overwritten by another leader's: not
    #: applied; ask the server the ``LeaderHint`` names.
    WRONG_LEADER = "ErrWrongLeader", True
    #: The request's entry was not applied in time; the outcome is unknown to the server too:
    #: ask again with the same RequestId (the session table keeps it exactly-once).
    TIMEOUT = "ErrTimeout", True, True
    #: The node cannot persist right now (its disk failed) and refused the request before
    #: proposing it; it refuses new work until it recovers: ask again (another server, or later).
    STORAGE_UNAVAILABLE = "ErrStorageUnavailable", True
    #: The request is malformed or too large; asking again cannot help.
    BAD_REQUEST = "ErrBadRequest"
    #: A committed entry that is not a command: every node refuses it the same way.
    BAD_COMMAND = "ErrBadCommand"
    #: PutIfAbsent on a present key (a result: the reply holds the existing value).
    KEY_EXISTS = "ErrKeyExists"
    #: CompareAndSwap whose expectation failed (a result: the reply holds the current value).
    CAS_MISMATCH = "ErrCasMismatch"
    #: A request id below the client's acknowledged mark: its answer is no longer kept, and it
    #: was not executed again.
    STALE_REQUEST = "ErrStaleRequest"
    #: The client's session expired: the write was not executed (docs/sessions.md).
    SESSION_EXPIRED = "ErrSessionExpired"
    #: nodeAdmin: the membership change makes no sense in the configuration in force (an
    #: unknown node, the last voter, an address already a member, ...): nothing changed.
    CONF_CHANGE_REFUSED = "ErrConfChangeRefused"
    #: nodeAdmin: the change cannot be made yet (another one is pending, the learner has not
    #: caught up): nothing changed; the same request may succeed later.
    CONF_CHANGE_NOT_YET = "ErrConfChangeNotYet"

    @classmethod
    def from_wire(cls, raw: bytes) -> Err | str:
        """The code a reply's ``Err`` bytes name, or the decoded string when it is none of them
        (a newer server's code)."""
        found = _BY_WIRE.get(raw)
        return raw.decode(errors="replace") if found is None else found


# One dict lookup per reply, on the clerk's hot path (no decode, no Enum call).
_BY_WIRE = {err.wire: err for err in Err}
