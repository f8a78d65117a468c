"""Hand-rolled protobuf RPC over TCP, wire-compatible with the C++ original's.

``RpcProvider`` serves services, ``RpcChannel`` and typed stubs (``TypedStub``) call them,
``RpcController`` carries one call's state. The frame format is in ``rpc.codec`` and
docs/wire-protocol.md.
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
from rpc.stub import BoundRpc, HandlerResult, Rpc, TypedStub

__all__ = [
    "BoundRpc",
    "FrameError",
    "FrameTooLargeError",
    "Handler",
    "HandlerResult",
    "MalformedHeaderError",
    "MalformedVarintError",
    "Rpc",
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
    "Status",
    "TypedStub",
    "install_event_loop",
]
