"""The hex examples in docs/wire-protocol.md are exactly what the codec produces."""

from __future__ import annotations

import re
from pathlib import Path

from kvapi import kvserver_rpc_pb2 as kv
from rpc.codec import encode_cancel, encode_request, encode_response, request_prefix
from rpc.errors import Status

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-protocol.md"
HEX = re.compile(r"^[0-9a-f]{2}$")


def example_blocks() -> list[bytes]:
    """The byte strings of the indented blocks under "## Examples", one per block."""
    text = DOC.read_text().split("## Examples", 1)[1]
    blocks: list[bytes] = []
    current = bytearray()
    for line in text.splitlines():
        if not line.startswith("    "):
            if current:
                blocks.append(bytes(current))
                current = bytearray()
            continue
        for token in line.split():
            if not HEX.match(token):
                break  # the rest of the line is a comment
            current.append(int(token, 16))
    if current:
        blocks.append(bytes(current))
    return blocks


def test_doc_examples_match_the_codec() -> None:
    put = kv.PutAppendArgs(
        Key=b"x", Value=b"hello world!", Op=b"Put", ClientId=b"c-42", RequestId=1
    ).SerializeToString()
    get = kv.GetArgs(Key=b"x", ClientId=b"c-42", RequestId=2).SerializeToString()
    reply = kv.GetReply(Err=b"OK", Value=b"hello world!").SerializeToString()
    error = b"service 'kvServerRpc' has no method 'Del'"
    assert example_blocks() == [
        encode_request(request_prefix(b"kvServerRpc", b"PutAppend"), put),
        kv.PutAppendReply(Err=b"OK").SerializeToString(),
        encode_request(request_prefix(b"kvServerRpc", b"Get"), get, call_id=1, deadline_ms=500),
        encode_response(1, Status.OK, b"", reply),
        encode_cancel(1),
        encode_response(2, Status.UNKNOWN_METHOD, error, b""),
    ]
