"""The typed stub of the demo's ``FiendServiceRpc`` (friend.proto) and its handler type."""

from __future__ import annotations

from typing import Protocol

from examples import friend_pb2
from rpc import HandlerResult, Rpc, RpcController, TypedStub

__all__ = ["FriendRpc", "FriendRpcHandlers"]


class FriendRpcHandlers(Protocol):
    """A server of ``FiendServiceRpc``."""

    def GetFriendsList(
        self, request: friend_pb2.GetFriendsListRequest, controller: RpcController
    ) -> HandlerResult[friend_pb2.GetFriendsListResponse]: ...


class FriendRpc(TypedStub[FriendRpcHandlers]):
    """``FiendServiceRpc``: the original's demo service (its name's typo included)."""

    SERVICE = friend_pb2.DESCRIPTOR.services_by_name["FiendServiceRpc"]
    GetFriendsList = Rpc(friend_pb2.GetFriendsListRequest, friend_pb2.GetFriendsListResponse)
