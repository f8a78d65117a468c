"""One numbering for users: a node is ``node<i>``, its 0-based place in ``test.conf``.

Inside, the Raft core numbers the same node ``i + 1``, because Raft keeps id 0 for "no node"
(no leader known, no vote cast). That id stays internal: every log line, table, error message
and command-line argument names a node ``node<i>``, the name its ``node<i>ip`` / ``node<i>port``
lines and its data directory ``DATA_DIR/node<i>`` already carry. These functions are the one
place the two numberings meet.
"""

from __future__ import annotations

import re

__all__ = ["node_name", "parse_node_index", "raft_id"]

_NAME = re.compile(r"(?:node)?(\d+)\Z")


def raft_id(index: int) -> int:
    """The Raft id of ``node<index>``."""
    if index < 0:
        raise ValueError(f"a node index is >= 0, not {index}")
    return index + 1


def node_name(raft_id: int) -> str:
    """What users read for the node with Raft id ``raft_id``: ``node<raft_id - 1>``."""
    if raft_id < 1:
        raise ValueError(f"a Raft id is >= 1, not {raft_id}")
    return f"node{raft_id - 1}"


def parse_node_index(text: str) -> int:
    """The index in ``node<i>`` or a bare ``<i>`` (what ``--id`` accepts); ValueError otherwise."""
    match = _NAME.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} names no node: expected node<i> or <i>, e.g. node0 or 0")
    return int(match.group(1))
