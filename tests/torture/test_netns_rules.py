"""The torture tier's own parts that need no namespace (these run in the default suite): the nft
rules a fault becomes, the partition arithmetic, the reason given where it cannot run, and the
history check."""

from __future__ import annotations

from pathlib import Path

import netns
import pytest
from harness import Torture, check_single_writer_log
from load_client import Summary
from netns import Network, NetworkUnavailable, check_available, render_ruleset

from lincheck import Operation, OpKind, Status


def test_a_ruleset_drops_the_blocked_and_a_share_of_the_lossy_only() -> None:
    script = render_ruleset(
        blocked=["10.1.1.3", "10.1.1.2"],
        lossy=["10.1.1.2", "10.1.1.253"],
        peer_loss=20,
        client="10.1.1.254",
        client_loss=5,
    )
    rules = [line.strip() for line in script.splitlines() if "saddr" in line]
    assert rules == [
        "ip saddr { 10.1.1.2, 10.1.1.3 } drop",
        "ip saddr { 10.1.1.2, 10.1.1.253 } numgen random mod 100 < 20 drop",
        "ip saddr 10.1.1.254 numgen random mod 100 < 5 drop",
    ]
    assert script.startswith("table inet torture {}\ndelete table inet torture\n")
    assert "hook input" in script and "hook output" not in script
    healed = render_ruleset(blocked=[], lossy=["10.1.1.2"], peer_loss=0, client="x", client_loss=0)
    assert "saddr" not in healed and "policy accept" in healed
    with pytest.raises(ValueError, match="percentage"):
        render_ruleset(blocked=[], lossy=[], peer_loss=101, client="x", client_loss=0)


def _network(n: int) -> Network:
    """A Network's fault bookkeeping without building anything (apply is not called)."""
    net = Network.__new__(Network)
    net.n = n
    net.hosts = [f"10.1.1.{i + 1}" for i in range(n)]
    net.bridge_host, net.client_host = "10.1.1.253", "10.1.1.254"
    net.cuts, net.peer_loss, net.client_loss = set(), 0, 0
    net.apply = lambda: None  # type: ignore[method-assign]
    return net


def test_a_partition_cuts_every_link_across_groups_both_ways_and_nothing_else() -> None:
    net = _network(5)
    net.partition([{0, 1}, {2, 3, 4}])
    assert net.cuts == {frozenset((a, b)) for a in (0, 1) for b in (2, 3, 4)}
    assert "10.1.1.3, 10.1.1.4, 10.1.1.5 } drop" in net.ruleset(0)
    assert "10.1.1.1, 10.1.1.2 } drop" in net.ruleset(4)
    net.cut([(1, 2)])  # a bridge: 0 sees both
    assert "10.1.1.3 } drop" in net.ruleset(1) and "10.1.1.2 } drop" in net.ruleset(2)
    assert " drop" not in net.ruleset(0)
    net.heal()
    assert all("saddr" not in net.ruleset(i) for i in range(5))


def test_without_root_or_nft_the_tier_skips_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(NetworkUnavailable, match=r"^network namespaces need root"):
        check_available()
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "nft" else tool)
    with pytest.raises(NetworkUnavailable, match=r"^nft is missing \(apt-get install nftables\)"):
        check_available()


def test_the_history_check_runs_lincheck_and_rejects_a_stale_read(tmp_path: Path) -> None:
    torture = Torture.__new__(Torture)
    torture.workdir, torture.seed, torture.timeline = tmp_path, 7, ["   0.00s a fault"]
    put = Operation("a", OpKind.PUT, "x", "1", None, 0, 10, Status.OK)
    fresh = Operation("b", OpKind.GET, "x", None, "1", 20, 30, Status.OK)
    assert torture._check_linearizable([put, fresh]).startswith("linearizable: 2 operations")
    stale = Operation("b", OpKind.GET, "x", None, None, 40, 50, Status.OK)
    with pytest.raises(AssertionError, match=r"(?s)lincheck exited 1 .*NOT linearizable.*seed 7"):
        torture._check_linearizable([put, fresh, stale])
    assert (tmp_path / "history.jsonl").exists()


def test_an_append_log_passes_with_late_unknown_rounds_and_fails_otherwise() -> None:
    summary = Summary("7", acked_appends=["0", "1", "3"], unknown_appends=["2", "4"])
    check_single_writer_log(summary, ["0", "1", "3", "2"])  # unknown round 2 landed late
    check_single_writer_log(summary, ["0", "1", "3", "4"])
    for stored, complaint in [
        (["0", "2", "1", "3"], r"rounds \[2\] applied before round 1"),
        (["0", "1", "3", "3"], "applied twice"),
        (["0", "1"], r"\['3'\] lost"),
        (["0", "1", "3", "9"], "nobody made"),
    ]:
        with pytest.raises(AssertionError, match=complaint):
            check_single_writer_log(summary, stored)
