from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetArgs(_message.Message):
    __slots__ = ("Key", "ClientId", "RequestId")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    ClientId: bytes
    RequestId: int
    def __init__(self, Key: _Optional[bytes] = ..., ClientId: _Optional[bytes] = ..., RequestId: _Optional[int] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("Err", "Value")
    ERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Value: bytes
    def __init__(self, Err: _Optional[bytes] = ..., Value: _Optional[bytes] = ...) -> None: ...

class PutAppendArgs(_message.Message):
    __slots__ = ("Key", "Value", "Op", "ClientId", "RequestId")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    Value: bytes
    Op: bytes
    ClientId: bytes
    RequestId: int
    def __init__(self, Key: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., Op: _Optional[bytes] = ..., ClientId: _Optional[bytes] = ..., RequestId: _Optional[int] = ...) -> None: ...

class PutAppendReply(_message.Message):
    __slots__ = ("Err",)
    ERR_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    def __init__(self, Err: _Optional[bytes] = ...) -> None: ...
