"""The typed stub and handler type of ``raftRpc`` (raft_transport.proto): nodes deliver Raft
messages to each other with ``await RaftRpc(channel).Deliver(batch)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from kvserver import raft_transport_pb2
from kvserver.raft_transport_pb2 import DeliverReply, MessageBatch
from rpc import HandlerResult, Rpc, RpcController, TypedStub

__all__ = ["RaftRpc", "RaftRpcHandlers"]


class RaftRpcHandlers(TypedDict):
    """A server of ``raftRpc``: its handler function by method name, served with
    ``RaftRpc.serve(provider, {"Deliver": on_deliver})``."""

    Deliver: Callable[[MessageBatch, RpcController], HandlerResult[DeliverReply]]


class RaftRpc(TypedStub[RaftRpcHandlers]):
    """One batch of Raft messages to a peer per call, in order."""

    SERVICE = raft_transport_pb2.DESCRIPTOR.services_by_name["raftRpc"]
    Deliver = Rpc(MessageBatch, DeliverReply)
