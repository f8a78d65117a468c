"""clerk.core: request numbering, the leader cache, and the retry walk with backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clerk.core import ClerkCore, RetryPolicy, hint_from_raft_id


def make(n: int = 3, seed: int = 1, policy: RetryPolicy | None = None) -> ClerkCore:
    return ClerkCore(n, b"client-1", random.Random(seed), policy or RetryPolicy())


def test_request_ids_increase_and_are_never_reused() -> None:
    core = make()
    ids = [core.new_request_id() for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    core.finish(3)
    assert core.new_request_id() == 6


def test_acked_below_is_lowest_outstanding_or_next_id() -> None:
    core = make()
    assert core.acked_below() == 1
    a, b, c = core.new_request_id(), core.new_request_id(), core.new_request_id()
    assert core.acked_below() == a
    core.finish(b)
    assert core.acked_below() == a
    core.finish(a)
    assert core.acked_below() == c
    core.finish(c)
    assert core.acked_below() == 4
    core.finish(c)  # finishing twice changes nothing
    assert core.acked_below() == 4


def test_finish_of_an_unissued_id_is_refused() -> None:
    core = make()
    core.new_request_id()
    with pytest.raises(ValueError, match="never issued"):
        core.finish(2)
    with pytest.raises(ValueError, match="never issued"):
        core.finish(0)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        ClerkCore(0, b"c", random.Random(0))
    with pytest.raises(ValueError, match="client_id"):
        ClerkCore(3, b"", random.Random(0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_backoff_ms": 0}, "initial_backoff_ms"),
        ({"initial_backoff_ms": 10, "max_backoff_ms": 5}, "max_backoff_ms"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_retry_policy_validates(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_first_attempt_asks_the_cached_leader_and_success_caches_it() -> None:
    core = make()
    attempt = core.start()
    assert attempt.server == 0
    assert attempt.on_wrong_leader(2) == 0
    assert attempt.server == 2
    attempt.on_success()
    assert core.leader == 2
    assert core.start().server == 2


def test_invalid_or_self_hint_moves_to_the_next_server() -> None:
    core = make()
    attempt = core.start()
    attempt.on_wrong_leader(None)
    assert attempt.server == 1
    attempt.on_wrong_leader(1)  # names itself: useless
    assert attempt.server == 2
    attempt.on_wrong_leader(7)  # out of range
    assert attempt.server == 0


def test_failure_moves_in_order_and_wraps() -> None:
    core = make()
    core.leader = 2
    attempt = core.start()
    attempt.on_failure()
    assert attempt.server == 0
    attempt.on_failure()
    assert attempt.server == 1


def test_no_delay_until_every_server_was_asked_then_capped_backoff() -> None:
    policy = RetryPolicy(initial_backoff_ms=10, max_backoff_ms=40, multiplier=2.0, jitter=0.0)
    attempt = make(policy=policy).start()
    delays = [attempt.on_failure() for _ in range(15)]
    # Rounds of three asks: pauses 10, 20, 40, 40 (capped) between rounds.
    assert delays == [0, 0, 10, 0, 0, 20, 0, 0, 40, 0, 0, 40, 0, 0, 40]
    assert attempt.asks == 16
    assert attempt.rounds_failed == 5


def test_hints_ping_ponging_still_back_off() -> None:
    policy = RetryPolicy(initial_backoff_ms=10, max_backoff_ms=10, jitter=0.0)
    attempt = make(n=3, policy=policy).start()
    delays = []
    for _ in range(6):
        # Servers 0 and 1 name each other forever; server 2 is never asked.
        delays.append(attempt.on_wrong_leader(1 - attempt.server))
    assert delays == [0, 0, 10, 0, 0, 10]


@given(
    seed=st.integers(0, 2**32),
    initial=st.integers(1, 100),
    extra=st.integers(0, 1000),
    jitter=st.floats(0.0, 1.0),
    round_index=st.integers(0, 200),
)
def test_backoff_stays_within_jittered_cap(
    seed: int, initial: int, extra: int, jitter: float, round_index: int
) -> None:
    policy = RetryPolicy(
        initial_backoff_ms=initial, max_backoff_ms=initial + extra, multiplier=2.0, jitter=jitter
    )
    b = min(initial + extra, initial * 2.0**round_index)
    drawn = policy.backoff_ms(round_index, random.Random(seed))
    assert max(1, round(b * (1 - jitter))) <= drawn <= round(b)


def test_same_seed_same_delays() -> None:
    def delays(seed: int) -> list[int]:
        attempt = make(seed=seed).start()
        return [attempt.on_failure() for _ in range(12)]

    assert delays(7) == delays(7)
    assert any(d > 0 for d in delays(7))


def test_single_server_backs_off_every_time() -> None:
    policy = RetryPolicy(initial_backoff_ms=5, max_backoff_ms=5, jitter=0.0)
    attempt = make(n=1, policy=policy).start()
    assert [attempt.on_failure() for _ in range(3)] == [5, 5, 5]
    assert attempt.server == 0


def test_hint_from_raft_id() -> None:
    assert hint_from_raft_id(0) is None  # no leader known
    assert hint_from_raft_id(1) == 0
    assert hint_from_raft_id(3) == 2
    assert hint_from_raft_id(7) == 6  # a node added later: the clerk decides whether it knows it


# -- servers that change (the clerk learned the membership) ----------------------------------------


def test_set_servers_grows_with_gaps_and_the_walk_follows_ascending_ids() -> None:
    core = make()
    core.set_servers([3, 1, 2])  # node0 removed, node3 added
    assert core.servers == (1, 2, 3)
    assert core.leader == 1  # the cached leader left: the lowest id
    attempt = core.start()
    visited = []
    for _ in range(4):
        attempt.on_failure()
        visited.append(attempt.server)
    assert visited == [2, 3, 1, 2]


def test_set_servers_takes_the_named_leader_else_keeps_the_cached_one() -> None:
    core = make()
    core.leader = 2
    core.set_servers([1, 2, 3])
    assert core.leader == 2
    core.set_servers([1, 2, 3], leader=3)
    assert core.leader == 3
    core.set_servers([1, 2], leader=7)  # a leader it does not ask is no use
    assert core.leader == 1
    with pytest.raises(ValueError, match="at least one"):
        core.set_servers([])
    with pytest.raises(ValueError, match=">= 0"):
        core.set_servers([-1, 2])


def test_a_hint_naming_a_server_not_asked_moves_to_the_next() -> None:
    core = make()
    core.set_servers([1, 2, 5])
    attempt = core.start()
    assert attempt.server == 1
    attempt.on_wrong_leader(3)  # not one of the servers: the next id instead
    assert attempt.server == 2
    attempt.on_wrong_leader(5)
    assert attempt.server == 5


def test_an_attempt_whose_server_left_moves_on_from_where_it_was() -> None:
    core = make(n=4)
    attempt = core.start()
    attempt.on_failure()
    attempt.on_failure()
    assert attempt.server == 2
    core.set_servers([0, 3, 5])  # 2 left
    attempt.on_failure()
    assert attempt.server == 3
    core.set_servers([0, 5])  # 3 left too
    attempt.restart()  # asks the cached leader next, counting no ask
    assert (attempt.server, attempt.asks) == (0, 4)


def test_a_round_is_as_long_as_the_servers_are_now() -> None:
    policy = RetryPolicy(initial_backoff_ms=10, max_backoff_ms=10, jitter=0.0)
    core = make(n=2, policy=policy)
    attempt = core.start()
    assert attempt.on_failure() == 0
    core.set_servers([0, 1, 2, 3])  # learned two more mid-round: the round is four asks
    assert [attempt.on_failure() for _ in range(4)] == [0, 0, 10, 0]


def test_success_at_a_server_that_left_is_not_cached() -> None:
    core = make()
    attempt = core.start()
    attempt.on_failure()
    core.set_servers([0, 2])
    attempt.on_success()  # server 1 answered, but it is no member any more
    assert core.leader == 0
