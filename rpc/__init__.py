"""Hand-rolled protobuf RPC over TCP, wire-compatible with the C++ original's.

``RpcProvider`` serves services, ``RpcChannel`` and ``ServiceStub`` call them, ``RpcController``
carries one call's state. The frame format is in ``rpc.codec`` and docs/wire-protocol.md.
"""

from rpc.channel import RpcChannel
from rpc.controller import RpcController
from rpc.errors import (
    FrameError,
    FrameTooLargeError,
    MalformedHeaderError,
    MalformedVarintError,
    RpcBadResponseError,
    RpcCancelledError,
    RpcConnectionError,
    RpcError,
    RpcLocalError,
    RpcRemoteError,
    RpcTimeoutError,
    Status,
)
from rpc.loop import install_event_loop
from rpc.provider import Handler, RpcProvider
from rpc.stub import ServiceStub, StubMethod

__all__ = [
    "FrameError",
    "FrameTooLargeError",
    "Handler",
    "MalformedHeaderError",
    "MalformedVarintError",
    "RpcBadResponseError",
    "RpcCancelledError",
    "RpcChannel",
    "RpcConnectionError",
    "RpcController",
    "RpcError",
    "RpcLocalError",
    "RpcProvider",
    "RpcRemoteError",
    "RpcTimeoutError",
    "ServiceStub",
    "Status",
    "StubMethod",
    "install_event_loop",
]
