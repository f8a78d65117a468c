"""The original's client-facing protocols keep their names, numbers and types (seed-cpp.md)."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from examples import friend_pb2
from kvapi import kvserver_rpc_pb2
from rpc import rpcheader_pb2

BYTES = FieldDescriptor.TYPE_BYTES
INT32 = FieldDescriptor.TYPE_INT32
UINT32 = FieldDescriptor.TYPE_UINT32
MESSAGE = FieldDescriptor.TYPE_MESSAGE


def fields(message: Descriptor) -> dict[str, tuple[int, int]]:
    return {f.name: (f.number, f.type) for f in message.fields}


ORIGINAL_KV_MESSAGES = {
    "GetArgs": {"Key": (1, BYTES), "ClientId": (2, BYTES), "RequestId": (3, INT32)},
    "GetReply": {"Err": (1, BYTES), "Value": (2, BYTES)},
    "PutAppendArgs": {
        "Key": (1, BYTES),
        "Value": (2, BYTES),
        "Op": (3, BYTES),
        "ClientId": (4, BYTES),
        "RequestId": (5, INT32),
    },
    "PutAppendReply": {"Err": (1, BYTES)},
}


def test_kv_protocol_keeps_the_originals_definitions() -> None:
    """Later issues add fields (numbered after the original's), messages and methods; what the
    original defined must stay exactly as it was."""
    file = kvserver_rpc_pb2.DESCRIPTOR
    assert file.package == "raftKVRpcProctoc"
    for name, original in ORIGINAL_KV_MESSAGES.items():
        current = fields(file.message_types_by_name[name])
        assert {field: current.get(field) for field in original} == original, name
        added = {number for field, (number, _) in current.items() if field not in original}
        assert all(number > len(original) for number in added), name
    service = file.services_by_name["kvServerRpc"]
    methods = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    assert methods["PutAppend"] == ("PutAppendArgs", "PutAppendReply")
    assert methods["Get"] == ("GetArgs", "GetReply")


def test_friend_protocol_is_the_originals() -> None:
    file = friend_pb2.DESCRIPTOR
    assert file.package == "fixbug"
    messages = file.message_types_by_name
    assert fields(messages["ResultCode"]) == {"errcode": (1, INT32), "errmsg": (2, BYTES)}
    assert fields(messages["GetFriendsListRequest"]) == {"userid": (1, UINT32)}
    response = messages["GetFriendsListResponse"]
    assert fields(response) == {"result": (1, MESSAGE), "friends": (2, BYTES)}
    assert response.fields_by_name["friends"].is_repeated
    [method] = file.services_by_name["FiendServiceRpc"].methods
    assert (method.name, method.input_type.name, method.output_type.name) == (
        "GetFriendsList",
        "GetFriendsListRequest",
        "GetFriendsListResponse",
    )


def test_rpc_header_keeps_the_originals_first_three_fields() -> None:
    assert rpcheader_pb2.DESCRIPTOR.package == "RPC"
    header = fields(rpcheader_pb2.RpcHeader.DESCRIPTOR)
    assert {k: header[k] for k in ("service_name", "method_name", "args_size")} == {
        "service_name": (1, BYTES),
        "method_name": (2, BYTES),
        "args_size": (3, UINT32),
    }
    assert all(
        number >= 4
        for name, (number, _) in header.items()
        if name not in {"service_name", "method_name", "args_size"}
    )
