from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OP_PUT: _ClassVar[Op]
    OP_APPEND: _ClassVar[Op]
    OP_DELETE: _ClassVar[Op]
    OP_PUT_IF_ABSENT: _ClassVar[Op]
    OP_UPDATE: _ClassVar[Op]
    OP_CAS: _ClassVar[Op]
OP_PUT: Op
OP_APPEND: Op
OP_DELETE: Op
OP_PUT_IF_ABSENT: Op
OP_UPDATE: Op
OP_CAS: Op

class Command(_message.Message):
    __slots__ = ("client_id", "request_id", "acked_below", "now_ms", "op", "key", "value", "expected", "expect_absent")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACKED_BELOW_FIELD_NUMBER: _ClassVar[int]
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ABSENT_FIELD_NUMBER: _ClassVar[int]
    client_id: bytes
    request_id: int
    acked_below: int
    now_ms: int
    op: Op
    key: bytes
    value: bytes
    expected: bytes
    expect_absent: bool
    def __init__(self, client_id: _Optional[bytes] = ..., request_id: _Optional[int] = ..., acked_below: _Optional[int] = ..., now_ms: _Optional[int] = ..., op: _Optional[_Union[Op, str]] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., expected: _Optional[bytes] = ..., expect_absent: _Optional[bool] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("err", "value")
    ERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    err: str
    value: bytes
    def __init__(self, err: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class CachedReply(_message.Message):
    __slots__ = ("request_id", "result")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    result: Result
    def __init__(self, request_id: _Optional[int] = ..., result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("client_id", "last_active_ms", "acked_below", "replies")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVE_MS_FIELD_NUMBER: _ClassVar[int]
    ACKED_BELOW_FIELD_NUMBER: _ClassVar[int]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    client_id: bytes
    last_active_ms: int
    acked_below: int
    replies: _containers.RepeatedCompositeFieldContainer[CachedReply]
    def __init__(self, client_id: _Optional[bytes] = ..., last_active_ms: _Optional[int] = ..., acked_below: _Optional[int] = ..., replies: _Optional[_Iterable[_Union[CachedReply, _Mapping]]] = ...) -> None: ...

class SessionTable(_message.Message):
    __slots__ = ("clock_ms", "sessions", "last_stamp_ms")
    CLOCK_MS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_STAMP_MS_FIELD_NUMBER: _ClassVar[int]
    clock_ms: int
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    last_stamp_ms: int
    def __init__(self, clock_ms: _Optional[int] = ..., sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., last_stamp_ms: _Optional[int] = ...) -> None: ...
