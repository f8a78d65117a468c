"""The simulated clients' request/reply encoding over ``Port.call``.

The real service speaks ``kvserver_rpc.proto``; the simulation only needs to carry a write (the
:class:`~kvserver.kvcommand_pb2.Command` the leader will log) or a linearizable Get, and to answer
with a :class:`~kvserver.kvcommand_pb2.Result` plus a leader hint. Only bytes cross the simulated
network, so both directions are encoded here:

* request: one kind byte, then the payload: ``b"W"`` + serialized ``Command``, or ``b"G"`` + key;
* reply: the replying node's leader hint as a big-endian u32 (a Raft node id; 0 = unknown), then
  the serialized ``Result`` (``err`` ``ErrWrongLeader`` when the node cannot serve it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from kvserver.kvcommand_pb2 import Command, Result

__all__ = [
    "GetRequest",
    "Reply",
    "WireError",
    "decode_reply",
    "decode_request",
    "encode_get",
    "encode_reply",
    "encode_write",
]

_WRITE = b"W"
_GET = b"G"
_HINT = struct.Struct(">I")


class WireError(ValueError):
    """Bytes that are not a request or reply of this encoding."""


@dataclass(frozen=True)
class GetRequest:
    """A linearizable read of one key."""

    key: bytes


@dataclass(frozen=True)
class Reply:
    """A server's answer: the result and whom it believes leads (Raft id, 0 if unknown)."""

    leader_hint: int
    result: Result


def encode_write(command: Command) -> bytes:
    """The request bytes for a write."""
    return _WRITE + command.SerializeToString()


def encode_get(key: bytes) -> bytes:
    """The request bytes for a linearizable Get of ``key``."""
    return _GET + key


def decode_request(data: bytes) -> Command | GetRequest:
    """Parse a request; raises :class:`WireError` for anything else."""
    kind, body = data[:1], data[1:]
    if kind == _GET:
        return GetRequest(body)
    if kind == _WRITE:
        try:
            return Command.FromString(body)
        except DecodeError as exc:
            raise WireError(f"undecodable write: {exc}") from exc
    raise WireError(f"unknown request kind {kind!r}")


def encode_reply(leader_hint: int, result: Result) -> bytes:
    """The reply bytes."""
    return _HINT.pack(leader_hint) + result.SerializeToString()


def decode_reply(data: bytes) -> Reply:
    """Parse a reply; raises :class:`WireError` if it is malformed."""
    if len(data) < _HINT.size:
        raise WireError(f"a reply needs at least {_HINT.size} bytes, got {len(data)}")
    (hint,) = _HINT.unpack_from(data)
    try:
        result = Result.FromString(data[_HINT.size :])
    except DecodeError as exc:
        raise WireError(f"undecodable result: {exc}") from exc
    return Reply(hint, result)
