"""Sans-I/O frame codec: bytes in, whole frames out, and frames to bytes.

Both directions use the same frame shape, ``varint32(len(header)) + header + payload``, where the
header (a protobuf message) says how long the payload is: ``RpcHeader.args_size`` for requests,
``RpcResponseHeader.payload_size`` for responses. A request is therefore byte for byte the C++
original's.

A decoder is fed whatever chunks the transport delivers (a frame split across reads, several
frames in one read: the original's "sticky packets") and returns every frame completed so far.
It checks the size a frame declares against the limit as soon as the length prefix, and again
the header, has arrived, so an oversize frame is refused before any buffer grows for it. After
any error the stream cannot be resynchronised: the decoder stays failed and the caller should
drop the connection.

Encoding is hand-rolled (the header layout is fixed, and building a protobuf message per call is
several times slower); tests check that the bytes equal protobuf's own serialization.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, NamedTuple, TypeVar

from google.protobuf.message import DecodeError

from rpc.errors import FrameTooLargeError, MalformedHeaderError, MalformedVarintError, Status
from rpc.rpcheader_pb2 import RpcHeader, RpcResponseHeader

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
"""Largest frame (prefix, header and payload together) accepted by default: 16 MiB."""

_MAX_VARINT32_BYTES = 5
_SMALL_VARINTS = [bytes((i,)) for i in range(0x80)]

H = TypeVar("H", RpcHeader, RpcResponseHeader)


class Frame(NamedTuple, Generic[H]):
    """One decoded frame: its parsed header and its payload (request args or response message)."""

    header: H
    payload: bytes


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as a protobuf base-128 varint."""
    if value < 0x80:
        return _SMALL_VARINTS[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_varint(len(value)) + value if value else b""


def request_prefix(service_name: bytes, method_name: bytes) -> bytes:
    """The constant leading header fields of every request for one method (cache it per method)."""
    return _bytes_field(0x0A, service_name) + _bytes_field(0x12, method_name)


def _frame(header: bytearray, payload: bytes, max_frame_size: int) -> bytes:
    size = len(header)
    frame = (_SMALL_VARINTS[size] if size < 0x80 else encode_varint(size)) + header + payload
    if len(frame) > max_frame_size:
        raise FrameTooLargeError(len(frame), max_frame_size)
    return frame


def encode_request(
    prefix: bytes,
    args: bytes,
    call_id: int = 0,
    deadline_ms: int = 0,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """Encode one request frame.

    ``prefix`` comes from :func:`request_prefix`. ``call_id`` 0 makes a legacy request (exactly
    what the C++ client sends); ``deadline_ms`` 0 means no deadline. Raises FrameTooLargeError
    when the frame would exceed ``max_frame_size``.
    """
    header = bytearray(prefix)
    if args:
        header += b"\x18"
        header += encode_varint(len(args))
    if call_id:
        header += b"\x20"
        header += encode_varint(call_id)
    if deadline_ms:
        header += b"\x28"
        header += encode_varint(deadline_ms)
    return _frame(header, args, max_frame_size)


def encode_cancel(call_id: int) -> bytes:
    """Encode a cancel frame: the caller abandons call ``call_id`` and expects no reply."""
    header = bytearray(b"\x20")
    header += encode_varint(call_id)
    header += b"\x30\x01"
    return _frame(header, b"", DEFAULT_MAX_FRAME_SIZE)


def encode_response(
    call_id: int,
    status: Status,
    error_text: bytes,
    payload: bytes,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """Encode one framed response (for callers that sent a call id).

    Raises FrameTooLargeError when the frame would exceed ``max_frame_size``.
    """
    header = bytearray()
    if call_id:
        header += b"\x08"
        header += encode_varint(call_id)
    if status:
        header += b"\x10"
        header += encode_varint(status)
    if error_text:
        header += _bytes_field(0x1A, error_text)
    if payload:
        header += b"\x20"
        header += encode_varint(len(payload))
    return _frame(header, payload, max_frame_size)


class _FrameDecoder(ABC, Generic[H]):
    """Incremental decoder shared by both directions; subclasses name the header type."""

    __slots__ = ("_buf", "_error", "_max")

    _header_type: type[H]

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 1:
            raise ValueError("max_frame_size must be positive")
        self._max = max_frame_size
        self._buf = bytearray()
        self._error: Exception | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not completely arrived yet (0 between frames)."""
        return len(self._buf)

    @abstractmethod
    def _payload_size(self, header: H) -> int:
        """How many payload bytes follow ``header``."""

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame[H]]:
        """Consume a chunk of the stream and return every frame it completes, in order.

        Raises a FrameError subclass (and keeps raising it on every later call) when the
        stream is malformed or a frame exceeds the size limit.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray | memoryview = buf
        else:
            view = data
        frames: list[Frame[H]] = []
        pos = 0
        end = len(view)
        try:
            with memoryview(view) as mv:
                while pos < end:
                    first = view[pos]
                    if first < 0x80:
                        header_len = first
                        start = pos + 1
                    else:
                        header_len, start = _read_varint32(view, pos, end)
                        if start < 0:
                            break
                    if header_len > self._max:
                        raise FrameTooLargeError(header_len, self._max)
                    header_end = start + header_len
                    if header_end > end:
                        break
                    header = self._parse_header(mv[start:header_end].tobytes())
                    frame_end = header_end + self._payload_size(header)
                    if frame_end - pos > self._max:
                        raise FrameTooLargeError(frame_end - pos, self._max)
                    if frame_end > end:
                        break
                    frames.append(Frame(header, mv[header_end:frame_end].tobytes()))
                    pos = frame_end
        except (FrameTooLargeError, MalformedHeaderError, MalformedVarintError) as exc:
            self._error = exc
            self._buf = bytearray()
            raise
        if buf:
            del buf[:pos]
        elif pos < end:
            buf += view[pos:]
        return frames

    def _parse_header(self, raw: bytes) -> H:
        try:
            return self._header_type.FromString(raw)
        except DecodeError as exc:
            raise MalformedHeaderError(
                f"{self._header_type.__name__} does not parse: {exc}"
            ) from None


def _read_varint32(view: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Read a varint32 at ``pos``; return (value, index after it), or (0, -1) if incomplete."""
    value = 0
    shift = 0
    for i in range(pos, min(end, pos + _MAX_VARINT32_BYTES)):
        byte = view[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >= 1 << 32:
                raise MalformedVarintError("length prefix does not fit in 32 bits")
            return value, i + 1
        shift += 7
    if end - pos >= _MAX_VARINT32_BYTES:
        raise MalformedVarintError(f"length prefix longer than {_MAX_VARINT32_BYTES} bytes")
    return 0, -1


class RequestDecoder(_FrameDecoder[RpcHeader]):
    """Decodes the request stream a server reads: frames of ``RpcHeader`` + args."""

    __slots__ = ()
    _header_type = RpcHeader

    def _payload_size(self, header: RpcHeader) -> int:
        return header.args_size


class ResponseDecoder(_FrameDecoder[RpcResponseHeader]):
    """Decodes the framed response stream a client reads: ``RpcResponseHeader`` + payload."""

    __slots__ = ()
    _header_type = RpcResponseHeader

    def _payload_size(self, header: RpcResponseHeader) -> int:
        return header.payload_size
