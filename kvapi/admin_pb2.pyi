from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("Id", "Host", "Port", "Role", "Term", "Leader", "Commit", "Applied", "LastIndex", "SnapshotIndex", "PeerHeldBytes")
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
    def __init__(self, Id: _Optional[int] = ..., Host: _Optional[bytes] = ..., Port: _Optional[int] = ..., Role: _Optional[bytes] = ..., Term: _Optional[int] = ..., Leader: _Optional[int] = ..., Commit: _Optional[int] = ..., Applied: _Optional[int] = ..., LastIndex: _Optional[int] = ..., SnapshotIndex: _Optional[int] = ..., PeerHeldBytes: _Optional[int] = ...) -> None: ...
