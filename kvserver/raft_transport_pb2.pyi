from raftcore import raftpb_pb2 as _raftpb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageBatch(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_raftpb_pb2.Message]
    def __init__(self, messages: _Optional[_Iterable[_Union[_raftpb_pb2.Message, _Mapping]]] = ...) -> None: ...

class DeliverReply(_message.Message):
    __slots__ = ("sender_removed",)
    SENDER_REMOVED_FIELD_NUMBER: _ClassVar[int]
    sender_removed: bool
    def __init__(self, sender_removed: _Optional[bool] = ...) -> None: ...
