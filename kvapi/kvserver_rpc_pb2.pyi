from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReadMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    READ_LINEARIZABLE: _ClassVar[ReadMode]
    READ_LEASE: _ClassVar[ReadMode]
    READ_STALE: _ClassVar[ReadMode]
READ_LINEARIZABLE: ReadMode
READ_LEASE: ReadMode
READ_STALE: ReadMode

class GetArgs(_message.Message):
    __slots__ = ("Key", "ClientId", "RequestId", "Mode")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    ClientId: bytes
    RequestId: int
    Mode: ReadMode
    def __init__(self, Key: _Optional[bytes] = ..., ClientId: _Optional[bytes] = ..., RequestId: _Optional[int] = ..., Mode: _Optional[_Union[ReadMode, str]] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("Err", "Value", "LeaderHint", "ServedMode")
    ERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LEADERHINT_FIELD_NUMBER: _ClassVar[int]
    SERVEDMODE_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Value: bytes
    LeaderHint: int
    ServedMode: ReadMode
    def __init__(self, Err: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., LeaderHint: _Optional[int] = ..., ServedMode: _Optional[_Union[ReadMode, str]] = ...) -> None: ...

class PutAppendArgs(_message.Message):
    __slots__ = ("Key", "Value", "Op", "ClientId", "RequestId", "AckedBelow")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    ACKEDBELOW_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    Value: bytes
    Op: bytes
    ClientId: bytes
    RequestId: int
    AckedBelow: int
    def __init__(self, Key: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., Op: _Optional[bytes] = ..., ClientId: _Optional[bytes] = ..., RequestId: _Optional[int] = ..., AckedBelow: _Optional[int] = ...) -> None: ...

class PutAppendReply(_message.Message):
    __slots__ = ("Err", "LeaderHint")
    ERR_FIELD_NUMBER: _ClassVar[int]
    LEADERHINT_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    LeaderHint: int
    def __init__(self, Err: _Optional[bytes] = ..., LeaderHint: _Optional[int] = ...) -> None: ...

class DeleteArgs(_message.Message):
    __slots__ = ("Key", "ClientId", "RequestId", "AckedBelow")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    ACKEDBELOW_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    ClientId: bytes
    RequestId: int
    AckedBelow: int
    def __init__(self, Key: _Optional[bytes] = ..., ClientId: _Optional[bytes] = ..., RequestId: _Optional[int] = ..., AckedBelow: _Optional[int] = ...) -> None: ...

class DeleteReply(_message.Message):
    __slots__ = ("Err", "Value", "LeaderHint")
    ERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LEADERHINT_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Value: bytes
    LeaderHint: int
    def __init__(self, Err: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., LeaderHint: _Optional[int] = ...) -> None: ...

class PutIfAbsentArgs(_message.Message):
    __slots__ = ("Key", "Value", "ClientId", "RequestId", "AckedBelow")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    ACKEDBELOW_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    Value: bytes
    ClientId: bytes
    RequestId: int
    AckedBelow: int
    def __init__(self, Key: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., ClientId: _Optional[bytes] = ..., RequestId: _Optional[int] = ..., AckedBelow: _Optional[int] = ...) -> None: ...

class PutIfAbsentReply(_message.Message):
    __slots__ = ("Err", "Value", "LeaderHint")
    ERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LEADERHINT_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Value: bytes
    LeaderHint: int
    def __init__(self, Err: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., LeaderHint: _Optional[int] = ...) -> None: ...

class UpdateArgs(_message.Message):
    __slots__ = ("Key", "Value", "ClientId", "RequestId", "AckedBelow")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    ACKEDBELOW_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    Value: bytes
    ClientId: bytes
    RequestId: int
    AckedBelow: int
    def __init__(self, Key: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., ClientId: _Optional[bytes] = ..., RequestId: _Optional[int] = ..., AckedBelow: _Optional[int] = ...) -> None: ...

class UpdateReply(_message.Message):
    __slots__ = ("Err", "Value", "LeaderHint")
    ERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LEADERHINT_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Value: bytes
    LeaderHint: int
    def __init__(self, Err: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., LeaderHint: _Optional[int] = ...) -> None: ...

class CompareAndSwapArgs(_message.Message):
    __slots__ = ("Key", "Expected", "ExpectAbsent", "Value", "ClientId", "RequestId", "AckedBelow")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    EXPECTABSENT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CLIENTID_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    ACKEDBELOW_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    Expected: bytes
    ExpectAbsent: bool
    Value: bytes
    ClientId: bytes
    RequestId: int
    AckedBelow: int
    def __init__(self, Key: _Optional[bytes] = ..., Expected: _Optional[bytes] = ..., ExpectAbsent: _Optional[bool] = ..., Value: _Optional[bytes] = ..., ClientId: _Optional[bytes] = ..., RequestId: _Optional[int] = ..., AckedBelow: _Optional[int] = ...) -> None: ...

class CompareAndSwapReply(_message.Message):
    __slots__ = ("Err", "Value", "LeaderHint")
    ERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LEADERHINT_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Value: bytes
    LeaderHint: int
    def __init__(self, Err: _Optional[bytes] = ..., Value: _Optional[bytes] = ..., LeaderHint: _Optional[int] = ...) -> None: ...

class ScanArgs(_message.Message):
    __slots__ = ("Start", "End", "Limit", "Mode")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    Start: bytes
    End: bytes
    Limit: int
    Mode: ReadMode
    def __init__(self, Start: _Optional[bytes] = ..., End: _Optional[bytes] = ..., Limit: _Optional[int] = ..., Mode: _Optional[_Union[ReadMode, str]] = ...) -> None: ...

class KeyValue(_message.Message):
    __slots__ = ("Key", "Value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    Key: bytes
    Value: bytes
    def __init__(self, Key: _Optional[bytes] = ..., Value: _Optional[bytes] = ...) -> None: ...

class ScanReply(_message.Message):
    __slots__ = ("Err", "Pairs", "LeaderHint", "ServedMode")
    ERR_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    LEADERHINT_FIELD_NUMBER: _ClassVar[int]
    SERVEDMODE_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Pairs: _containers.RepeatedCompositeFieldContainer[KeyValue]
    LeaderHint: int
    ServedMode: ReadMode
    def __init__(self, Err: _Optional[bytes] = ..., Pairs: _Optional[_Iterable[_Union[KeyValue, _Mapping]]] = ..., LeaderHint: _Optional[int] = ..., ServedMode: _Optional[_Union[ReadMode, str]] = ...) -> None: ...
