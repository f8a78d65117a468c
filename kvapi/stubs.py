"""Typed stubs and handler types of the client-facing services: ``kvServerRpc`` and ``nodeAdmin``.

A caller uses the stub (``await KvServerRpc(channel).Get(args)``); a server's handlers are
checked by mypy against the handler type (a Protocol of handler methods, or a TypedDict of
handler functions) when served with ``KvServerRpc.serve(provider, handlers)``. Defining each stub
checks it against the generated descriptor (rpc.stub).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypedDict

from kvapi import admin_pb2, kvserver_rpc_pb2
from kvapi import kvserver_rpc_pb2 as pb
from kvapi.admin_pb2 import (
    MemberAddRequest,
    MemberChangeReply,
    MemberIdRequest,
    MemberListReply,
    MemberListRequest,
    StatusReply,
    StatusRequest,
)
from rpc import HandlerResult, Rpc, RpcController, TypedStub

__all__ = ["KvServerRpc", "KvServerRpcHandlers", "NodeAdmin", "NodeAdminHandlers"]


class KvServerRpcHandlers(Protocol):
    """A server of ``kvServerRpc``: one handler per method."""

    def PutAppend(
        self, request: pb.PutAppendArgs, controller: RpcController
    ) -> HandlerResult[pb.PutAppendReply]: ...
    def Get(self, request: pb.GetArgs, controller: RpcController) -> HandlerResult[pb.GetReply]: ...
    def Delete(
        self, request: pb.DeleteArgs, controller: RpcController
    ) -> HandlerResult[pb.DeleteReply]: ...
    def PutIfAbsent(
        self, request: pb.PutIfAbsentArgs, controller: RpcController
    ) -> HandlerResult[pb.PutIfAbsentReply]: ...
    def Update(
        self, request: pb.UpdateArgs, controller: RpcController
    ) -> HandlerResult[pb.UpdateReply]: ...
    def CompareAndSwap(
        self, request: pb.CompareAndSwapArgs, controller: RpcController
    ) -> HandlerResult[pb.CompareAndSwapReply]: ...
    def Scan(
        self, request: pb.ScanArgs, controller: RpcController
    ) -> HandlerResult[pb.ScanReply]: ...


class KvServerRpc(TypedStub[KvServerRpcHandlers]):
    """The client protocol (kvserver_rpc.proto); the first two methods are the C++ original's."""

    SERVICE = kvserver_rpc_pb2.DESCRIPTOR.services_by_name["kvServerRpc"]
    PutAppend = Rpc(pb.PutAppendArgs, pb.PutAppendReply)
    Get = Rpc(pb.GetArgs, pb.GetReply)
    Delete = Rpc(pb.DeleteArgs, pb.DeleteReply)
    PutIfAbsent = Rpc(pb.PutIfAbsentArgs, pb.PutIfAbsentReply)
    Update = Rpc(pb.UpdateArgs, pb.UpdateReply)
    CompareAndSwap = Rpc(pb.CompareAndSwapArgs, pb.CompareAndSwapReply)
    Scan = Rpc(pb.ScanArgs, pb.ScanReply)


_MemberChange = Callable[[MemberIdRequest, RpcController], HandlerResult[MemberChangeReply]]


class NodeAdminHandlers(TypedDict):
    """A server of ``nodeAdmin``: its handler function by method name, served with
    ``NodeAdmin.serve(provider, {"Status": on_status, ...})``."""

    Status: Callable[[StatusRequest, RpcController], HandlerResult[StatusReply]]
    MemberList: Callable[[MemberListRequest, RpcController], HandlerResult[MemberListReply]]
    MemberAdd: Callable[[MemberAddRequest, RpcController], HandlerResult[MemberChangeReply]]
    MemberPromote: _MemberChange
    MemberRemove: _MemberChange
    TransferLeader: _MemberChange


class NodeAdmin(TypedStub[NodeAdminHandlers]):
    """Operators' view of one node and the cluster's membership (admin.proto)."""

    SERVICE = admin_pb2.DESCRIPTOR.services_by_name["nodeAdmin"]
    Status = Rpc(StatusRequest, StatusReply)
    MemberList = Rpc(MemberListRequest, MemberListReply)
    MemberAdd = Rpc(MemberAddRequest, MemberChangeReply)
    MemberPromote = Rpc(MemberIdRequest, MemberChangeReply)
    MemberRemove = Rpc(MemberIdRequest, MemberChangeReply)
    TransferLeader = Rpc(MemberIdRequest, MemberChangeReply)
