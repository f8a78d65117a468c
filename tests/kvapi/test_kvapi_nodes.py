"""Users read one numbering: ``node<i>``, test.conf's 0-based index; the Raft id i + 1 is inside."""

from __future__ import annotations

import pytest

from kvapi.nodes import node_name, parse_node_index, raft_id


def test_node_i_is_raft_id_i_plus_one_and_back() -> None:
    assert [raft_id(i) for i in range(3)] == [1, 2, 3]
    assert [node_name(raft_id(i)) for i in range(3)] == ["node0", "node1", "node2"]


def test_no_node_has_raft_id_zero_or_a_negative_index() -> None:
    with pytest.raises(ValueError, match="Raft id"):
        node_name(0)
    with pytest.raises(ValueError, match="index"):
        raft_id(-1)


@pytest.mark.parametrize(("text", "index"), [("0", 0), ("node0", 0), ("node12", 12), (" 2 ", 2)])
def test_a_node_is_named_by_its_index_or_its_name(text: str, index: int) -> None:
    assert parse_node_index(text) == index


@pytest.mark.parametrize("text", ["", "node", "-1", "node-1", "n0", "node 0", "1.0", "nodeX"])
def test_anything_else_names_no_node(text: str) -> None:
    with pytest.raises(ValueError, match="names no node"):
        parse_node_index(text)
