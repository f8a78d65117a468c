"""The load's own checks reject what they must (no cluster: summaries and stored values only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from load_client import Summary, parse_args, put_key, put_prefix
from workload import check_appends


def summary(acked: list[str], unknown: list[str] | None = None) -> Summary:
    return Summary("7", acked_appends=acked, unknown_appends=unknown or [])


def test_acknowledged_appends_once_in_order_pass_with_a_late_unknown_one() -> None:
    check_appends(summary(["0", "2", "3"], ["1"]), ["0", "2", "1", "3"])
    check_appends(summary(["0", "2"], ["1"]), ["0", "2"])


@pytest.mark.parametrize(
    ("acked", "unknown", "stored", "complaint"),
    [
        (["0", "1"], [], ["0", "1", "1"], "applied twice"),
        (["0", "1"], [], ["0"], r"\['1'\] lost"),
        (["0", "1"], [], ["1", "0"], "out of order"),
        (["0"], [], ["0", "5"], "nobody made"),
    ],
)
def test_append_check_rejects(
    acked: list[str], unknown: list[str], stored: list[str], complaint: str
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_appends(summary(acked, unknown), stored)


def test_put_keys_of_a_client_are_exactly_its_scan_range() -> None:
    start, end = put_prefix("1")
    assert all(start <= put_key("1", k) < end for k in (0, 9, 10, 12345))
    assert not start <= put_key("10", 0) < end
    assert not start <= put_key("2", 0) < end


def test_summary_round_trips_and_the_command_line_parses(tmp_path: Path) -> None:
    original = Summary("3", {"w.3.0": "0"}, ["w.3.1"], ["0"], ["1"])
    original.save(tmp_path / "s.json")
    assert Summary.load(tmp_path / "s.json") == original
    assert json.loads((tmp_path / "s.json").read_text())["client"] == "3"
    args = parse_args(["--conf", "t.conf", "--client-id", "3", "--history", "h", "--summary", "s"])
    assert (args.client_id, args.shared_keys, args.duration) == ("3", "s0,s1", None)
