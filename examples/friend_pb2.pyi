from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResultCode(_message.Message):
    __slots__ = ("errcode", "errmsg")
    ERRCODE_FIELD_NUMBER: _ClassVar[int]
    ERRMSG_FIELD_NUMBER: _ClassVar[int]
    errcode: int
    errmsg: bytes
    def __init__(self, errcode: _Optional[int] = ..., errmsg: _Optional[bytes] = ...) -> None: ...

class GetFriendsListRequest(_message.Message):
    __slots__ = ("userid",)
    USERID_FIELD_NUMBER: _ClassVar[int]
    userid: int
    def __init__(self, userid: _Optional[int] = ...) -> None: ...

class GetFriendsListResponse(_message.Message):
    __slots__ = ("result", "friends")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FRIENDS_FIELD_NUMBER: _ClassVar[int]
    result: ResultCode
    friends: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, result: _Optional[_Union[ResultCode, _Mapping]] = ..., friends: _Optional[_Iterable[bytes]] = ...) -> None: ...
