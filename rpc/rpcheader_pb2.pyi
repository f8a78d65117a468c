from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RpcStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RPC_OK: _ClassVar[RpcStatus]
    RPC_UNKNOWN_SERVICE: _ClassVar[RpcStatus]
    RPC_UNKNOWN_METHOD: _ClassVar[RpcStatus]
    RPC_BAD_REQUEST: _ClassVar[RpcStatus]
    RPC_HANDLER_ERROR: _ClassVar[RpcStatus]
    RPC_DEADLINE_EXCEEDED: _ClassVar[RpcStatus]
    RPC_SHUTTING_DOWN: _ClassVar[RpcStatus]
RPC_OK: RpcStatus
RPC_UNKNOWN_SERVICE: RpcStatus
RPC_UNKNOWN_METHOD: RpcStatus
RPC_BAD_REQUEST: RpcStatus
RPC_HANDLER_ERROR: RpcStatus
RPC_DEADLINE_EXCEEDED: RpcStatus
RPC_SHUTTING_DOWN: RpcStatus

class RpcHeader(_message.Message):
    __slots__ = ("service_name", "method_name", "args_size", "call_id", "deadline_ms", "cancel")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_SIZE_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    service_name: bytes
    method_name: bytes
    args_size: int
    call_id: int
    deadline_ms: int
    cancel: bool
    def __init__(self, service_name: _Optional[bytes] = ..., method_name: _Optional[bytes] = ..., args_size: _Optional[int] = ..., call_id: _Optional[int] = ..., deadline_ms: _Optional[int] = ..., cancel: _Optional[bool] = ...) -> None: ...

class RpcResponseHeader(_message.Message):
    __slots__ = ("call_id", "status", "error_text", "payload_size")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TEXT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    status: RpcStatus
    error_text: bytes
    payload_size: int
    def __init__(self, call_id: _Optional[int] = ..., status: _Optional[_Union[RpcStatus, str]] = ..., error_text: _Optional[bytes] = ..., payload_size: _Optional[int] = ...) -> None: ...
