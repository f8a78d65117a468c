from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("Id", "Host", "Port", "Role", "Term", "Leader", "Commit", "Applied", "LastIndex", "SnapshotIndex", "PeerHeldBytes", "Learner", "Member")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    LASTINDEX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTINDEX_FIELD_NUMBER: _ClassVar[int]
    PEERHELDBYTES_FIELD_NUMBER: _ClassVar[int]
    LEARNER_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    Id: int
    Host: bytes
    Port: int
    Role: bytes
    Term: int
    Leader: int
    Commit: int
    Applied: int
    LastIndex: int
    SnapshotIndex: int
    PeerHeldBytes: int
    Learner: bool
    Member: bool
    def __init__(self, Id: _Optional[int] = ..., Host: _Optional[bytes] = ..., Port: _Optional[int] = ..., Role: _Optional[bytes] = ..., Term: _Optional[int] = ..., Leader: _Optional[int] = ..., Commit: _Optional[int] = ..., Applied: _Optional[int] = ..., LastIndex: _Optional[int] = ..., SnapshotIndex: _Optional[int] = ..., PeerHeldBytes: _Optional[int] = ..., Learner: _Optional[bool] = ..., Member: _Optional[bool] = ...) -> None: ...

class MemberInfo(_message.Message):
    __slots__ = ("Id", "Address", "Learner")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEARNER_FIELD_NUMBER: _ClassVar[int]
    Id: int
    Address: bytes
    Learner: bool
    def __init__(self, Id: _Optional[int] = ..., Address: _Optional[bytes] = ..., Learner: _Optional[bool] = ...) -> None: ...

class MemberListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemberListReply(_message.Message):
    __slots__ = ("Err", "Leader", "Members", "Index")
    ERR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Leader: int
    Members: _containers.RepeatedCompositeFieldContainer[MemberInfo]
    Index: int
    def __init__(self, Err: _Optional[bytes] = ..., Leader: _Optional[int] = ..., Members: _Optional[_Iterable[_Union[MemberInfo, _Mapping]]] = ..., Index: _Optional[int] = ...) -> None: ...

class MemberAddRequest(_message.Message):
    __slots__ = ("Address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    Address: bytes
    def __init__(self, Address: _Optional[bytes] = ...) -> None: ...

class MemberIdRequest(_message.Message):
    __slots__ = ("Id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    Id: int
    def __init__(self, Id: _Optional[int] = ...) -> None: ...

class MemberChangeReply(_message.Message):
    __slots__ = ("Err", "Leader", "Id", "Message")
    ERR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    Err: bytes
    Leader: int
    Id: int
    Message: bytes
    def __init__(self, Err: _Optional[bytes] = ..., Leader: _Optional[int] = ..., Id: _Optional[int] = ..., Message: _Optional[bytes] = ...) -> None: ...
