from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_NORMAL: _ClassVar[EntryType]
    ENTRY_CONF_CHANGE: _ClassVar[EntryType]

class ConfChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONF_ADD_LEARNER: _ClassVar[ConfChangeType]
    CONF_PROMOTE: _ClassVar[ConfChangeType]
    CONF_REMOVE: _ClassVar[ConfChangeType]
    CONF_FORCE: _ClassVar[ConfChangeType]

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MSG_APPEND: _ClassVar[MessageType]
    MSG_APPEND_RESPONSE: _ClassVar[MessageType]
    MSG_HEARTBEAT: _ClassVar[MessageType]
    MSG_HEARTBEAT_RESPONSE: _ClassVar[MessageType]
    MSG_VOTE: _ClassVar[MessageType]
    MSG_VOTE_RESPONSE: _ClassVar[MessageType]
    MSG_PRE_VOTE: _ClassVar[MessageType]
    MSG_PRE_VOTE_RESPONSE: _ClassVar[MessageType]
    MSG_SNAPSHOT: _ClassVar[MessageType]
    MSG_SNAPSHOT_RESPONSE: _ClassVar[MessageType]
    MSG_TIMEOUT_NOW: _ClassVar[MessageType]
    MSG_READ_INDEX: _ClassVar[MessageType]
    MSG_READ_INDEX_RESPONSE: _ClassVar[MessageType]
    MSG_HUP: _ClassVar[MessageType]
    MSG_BEAT: _ClassVar[MessageType]
    MSG_PROPOSE: _ClassVar[MessageType]
    MSG_TRANSFER_LEADER: _ClassVar[MessageType]
    MSG_UNREACHABLE: _ClassVar[MessageType]
    MSG_CHECK_QUORUM: _ClassVar[MessageType]
ENTRY_NORMAL: EntryType
ENTRY_CONF_CHANGE: EntryType
CONF_ADD_LEARNER: ConfChangeType
CONF_PROMOTE: ConfChangeType
CONF_REMOVE: ConfChangeType
CONF_FORCE: ConfChangeType
MSG_APPEND: MessageType
MSG_APPEND_RESPONSE: MessageType
MSG_HEARTBEAT: MessageType
MSG_HEARTBEAT_RESPONSE: MessageType
MSG_VOTE: MessageType
MSG_VOTE_RESPONSE: MessageType
MSG_PRE_VOTE: MessageType
MSG_PRE_VOTE_RESPONSE: MessageType
MSG_SNAPSHOT: MessageType
MSG_SNAPSHOT_RESPONSE: MessageType
MSG_TIMEOUT_NOW: MessageType
MSG_READ_INDEX: MessageType
MSG_READ_INDEX_RESPONSE: MessageType
MSG_HUP: MessageType
MSG_BEAT: MessageType
MSG_PROPOSE: MessageType
MSG_TRANSFER_LEADER: MessageType
MSG_UNREACHABLE: MessageType
MSG_CHECK_QUORUM: MessageType

class Entry(_message.Message):
    __slots__ = ("term", "index", "type", "data")
    TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    term: int
    index: int
    type: EntryType
    data: bytes
    def __init__(self, term: _Optional[int] = ..., index: _Optional[int] = ..., type: _Optional[_Union[EntryType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class HardState(_message.Message):
    __slots__ = ("term", "vote", "commit")
    TERM_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    term: int
    vote: int
    commit: int
    def __init__(self, term: _Optional[int] = ..., vote: _Optional[int] = ..., commit: _Optional[int] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "address")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class ConfState(_message.Message):
    __slots__ = ("voters", "learners", "members", "next_id")
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ID_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    next_id: int
    def __init__(self, voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., next_id: _Optional[int] = ...) -> None: ...

class ConfChange(_message.Message):
    __slots__ = ("type", "node_id", "address", "result")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    type: ConfChangeType
    node_id: int
    address: str
    result: ConfState
    def __init__(self, type: _Optional[_Union[ConfChangeType, str]] = ..., node_id: _Optional[int] = ..., address: _Optional[str] = ..., result: _Optional[_Union[ConfState, _Mapping]] = ...) -> None: ...

class SnapshotMetadata(_message.Message):
    __slots__ = ("index", "term", "conf_state")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    CONF_STATE_FIELD_NUMBER: _ClassVar[int]
    index: int
    term: int
    conf_state: ConfState
    def __init__(self, index: _Optional[int] = ..., term: _Optional[int] = ..., conf_state: _Optional[_Union[ConfState, _Mapping]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("type", "to", "sender", "term", "log_term", "index", "entries", "commit", "reject", "reject_hint", "reject_term", "snapshot", "offset", "data", "done", "context", "lease_sent", "carries_conf")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    REJECT_HINT_FIELD_NUMBER: _ClassVar[int]
    REJECT_TERM_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LEASE_SENT_FIELD_NUMBER: _ClassVar[int]
    CARRIES_CONF_FIELD_NUMBER: _ClassVar[int]
    type: MessageType
    to: int
    sender: int
    term: int
    log_term: int
    index: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    commit: int
    reject: bool
    reject_hint: int
    reject_term: int
    snapshot: SnapshotMetadata
    offset: int
    data: bytes
    done: bool
    context: bytes
    lease_sent: float
    carries_conf: bool
    def __init__(self, type: _Optional[_Union[MessageType, str]] = ..., to: _Optional[int] = ..., sender: _Optional[int] = ..., term: _Optional[int] = ..., log_term: _Optional[int] = ..., index: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., commit: _Optional[int] = ..., reject: _Optional[bool] = ..., reject_hint: _Optional[int] = ..., reject_term: _Optional[int] = ..., snapshot: _Optional[_Union[SnapshotMetadata, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., done: _Optional[bool] = ..., context: _Optional[bytes] = ..., lease_sent: _Optional[float] = ..., carries_conf: _Optional[bool] = ...) -> None: ...
