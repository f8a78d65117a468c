"""The sans-I/O frame codec: exact bytes, chunking ("sticky packets"), limits and bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpc import rpcheader_pb2
from rpc.codec import (
    DEFAULT_MAX_FRAME_SIZE,
    RequestDecoder,
    ResponseDecoder,
    encode_cancel,
    encode_request,
    encode_response,
    encode_varint,
    request_prefix,
)
from rpc.errors import FrameTooLargeError, MalformedHeaderError, MalformedVarintError, Status

# Pure and fast, but on a shared busy machine one slow example must not fail the test.
NO_DEADLINE = settings(deadline=None)

KV_PUT_HEADER = b"\x1a\x0a\x0bkvServerRpc\x12\x09PutAppend\x18\x1e"

names = st.binary(min_size=1, max_size=40)
payloads = st.binary(max_size=300)
call_ids = st.integers(min_value=0, max_value=2**64 - 1)
deadlines = st.integers(min_value=0, max_value=2**32 - 1)


def test_legacy_request_is_the_originals_bytes() -> None:
    args = b"a" * 30
    frame = encode_request(request_prefix(b"kvServerRpc", b"PutAppend"), args)
    assert frame == KV_PUT_HEADER + args


def test_extended_request_appends_fields_from_4() -> None:
    frame = encode_request(request_prefix(b"S", b"M"), b"xy", call_id=300, deadline_ms=5)
    header = rpcheader_pb2.RpcHeader(
        service_name=b"S", method_name=b"M", args_size=2, call_id=300, deadline_ms=5
    ).SerializeToString()
    assert frame == bytes([len(header)]) + header + b"xy"
    assert header.endswith(b"\x18\x02\x20\xac\x02\x28\x05")


@NO_DEADLINE
@given(names, names, payloads, call_ids, deadlines)
def test_request_encoding_equals_protobuf(
    service: bytes, method: bytes, args: bytes, call_id: int, deadline_ms: int
) -> None:
    header = rpcheader_pb2.RpcHeader(
        service_name=service,
        method_name=method,
        args_size=len(args),
        call_id=call_id,
        deadline_ms=deadline_ms,
    ).SerializeToString()
    expected = encode_varint(len(header)) + header + args
    assert encode_request(request_prefix(service, method), args, call_id, deadline_ms) == expected


@NO_DEADLINE
@given(call_ids, st.sampled_from(list(Status)), st.binary(max_size=200), payloads)
def test_response_encoding_equals_protobuf(
    call_id: int, status: Status, text: bytes, payload: bytes
) -> None:
    header = rpcheader_pb2.RpcResponseHeader(
        call_id=call_id, status=int(status), error_text=text, payload_size=len(payload)
    ).SerializeToString()
    expected = encode_varint(len(header)) + header + payload
    assert encode_response(call_id, status, text, payload) == expected


@NO_DEADLINE
@given(st.integers(min_value=1, max_value=2**64 - 1))
def test_cancel_encoding_equals_protobuf(call_id: int) -> None:
    header = rpcheader_pb2.RpcHeader(call_id=call_id, cancel=True).SerializeToString()
    assert encode_cancel(call_id) == encode_varint(len(header)) + header


def test_status_mirrors_the_proto_enum() -> None:
    proto = {v.name: v.number for v in rpcheader_pb2.RpcStatus.DESCRIPTOR.values}
    assert proto == {f"RPC_{s.name}": s.value for s in Status}


requests = st.lists(st.tuples(names, names, payloads, call_ids, deadlines), max_size=40)


@NO_DEADLINE
@given(requests, st.data())
def test_request_decoder_reassembles_any_chunking(
    specs: list[tuple[bytes, bytes, bytes, int, int]], data: st.DataObject
) -> None:
    stream = b"".join(encode_request(request_prefix(s, m), a, c, d) for s, m, a, c, d in specs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder = RequestDecoder()
    frames = []
    start = 0
    for cut in [*cuts, len(stream)]:
        frames.extend(decoder.feed(stream[start:cut]))
        start = cut
    assert decoder.buffered == 0
    decoded = [
        (
            f.header.service_name,
            f.header.method_name,
            f.payload,
            f.header.call_id,
            f.header.deadline_ms,
        )
        for f in frames
    ]
    assert decoded == specs


responses = st.lists(
    st.tuples(call_ids, st.sampled_from(list(Status)), st.binary(max_size=50), payloads),
    max_size=40,
)


@NO_DEADLINE
@given(responses, st.data())
def test_response_decoder_reassembles_any_chunking(
    specs: list[tuple[int, Status, bytes, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_response(c, s, t, p) for c, s, t, p in specs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder = ResponseDecoder()
    frames = []
    start = 0
    for cut in [*cuts, len(stream)]:
        # memoryview and bytearray chunks are accepted as well as bytes
        chunk = stream[start:cut]
        frames.extend(decoder.feed(memoryview(chunk) if cut % 2 else bytearray(chunk)))
        start = cut
    decoded = [
        (f.header.call_id, Status(f.header.status), f.header.error_text, f.payload) for f in frames
    ]
    assert decoded == specs


def test_byte_at_a_time_keeps_only_the_partial_frame() -> None:
    frame = encode_request(request_prefix(b"S", b"M"), b"z" * 50, call_id=7)
    decoder = RequestDecoder()
    for i, byte in enumerate(frame[:-1]):
        assert decoder.feed(bytes([byte])) == []
        assert decoder.buffered == i + 1
    [done] = decoder.feed(frame[-1:])
    assert done.payload == b"z" * 50
    assert decoder.buffered == 0


def test_default_limit_is_16_mib() -> None:
    assert DEFAULT_MAX_FRAME_SIZE == 16 * 1024 * 1024


def test_oversize_args_refused_from_the_header_alone() -> None:
    decoder = RequestDecoder(max_frame_size=1000)
    header = rpcheader_pb2.RpcHeader(
        service_name=b"S", method_name=b"M", args_size=2**31
    ).SerializeToString()
    # Only the prefix and header have arrived: the 2 GiB of args are refused before buffering.
    with pytest.raises(FrameTooLargeError) as info:
        decoder.feed(bytes([len(header)]) + header + b"abc")
    assert info.value.limit == 1000
    assert decoder.buffered == 0


def test_oversize_header_length_refused_from_the_prefix_alone() -> None:
    decoder = RequestDecoder(max_frame_size=1000)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(encode_varint(5000))


def test_frame_just_at_the_limit_passes_and_one_byte_more_fails() -> None:
    prefix = request_prefix(b"S", b"M")
    frame = encode_request(prefix, b"x" * 100, call_id=1)
    assert len(RequestDecoder(max_frame_size=len(frame)).feed(frame)) == 1
    with pytest.raises(FrameTooLargeError):
        RequestDecoder(max_frame_size=len(frame) - 1).feed(frame)


def test_encoders_refuse_oversize_frames() -> None:
    with pytest.raises(FrameTooLargeError):
        encode_request(request_prefix(b"S", b"M"), b"x" * 100, max_frame_size=50)
    with pytest.raises(FrameTooLargeError):
        encode_response(1, Status.OK, b"", b"x" * 100, max_frame_size=50)


def test_overlong_varint_is_malformed() -> None:
    with pytest.raises(MalformedVarintError):
        RequestDecoder().feed(b"\x80\x80\x80\x80\x80\x01")


def test_varint_beyond_32_bits_is_malformed() -> None:
    with pytest.raises(MalformedVarintError):
        RequestDecoder().feed(b"\xff\xff\xff\xff\x1f")


def test_incomplete_varint_waits_for_more() -> None:
    decoder = RequestDecoder()
    assert decoder.feed(b"\x80\x80") == []
    assert decoder.buffered == 2


def test_garbage_header_is_malformed_and_the_decoder_stays_failed() -> None:
    decoder = RequestDecoder()
    # field 1 claims 10 bytes of a 3-byte header
    with pytest.raises(MalformedHeaderError):
        decoder.feed(b"\x03\x0a\x0a\x41")
    with pytest.raises(MalformedHeaderError):
        decoder.feed(encode_request(request_prefix(b"S", b"M"), b""))


def test_invalid_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        RequestDecoder(max_frame_size=0)
