"""The simulated network: delivery, loss, partitions, incarnations, calls, counters."""

from __future__ import annotations

import random
from collections.abc import Callable

from raftcore.testing.network import SimNetwork
from raftcore.testing.scheduler import MS, SECOND, Scheduler


def make(seed: int = 1) -> tuple[Scheduler, SimNetwork]:
    sched = Scheduler()
    return sched, SimNetwork(sched, random.Random(seed))


def inbox(log: list[tuple[int, bytes]]) -> Callable[[int, bytes], None]:
    return lambda src, payload: log.append((src, payload))


def test_reliable_delivery_carries_bytes_and_counts() -> None:
    sched, net = make()
    got: list[tuple[int, bytes]] = []
    a = net.attach(1)
    net.attach(2, on_message=inbox(got))
    net.connect(1)
    net.connect(2)
    a.send(2, b"hello", is_request=True)
    a.send(2, b"ack", is_request=False)
    sched.run_for(10 * MS)
    assert got == [(1, b"hello"), (1, b"ack")] or got == [(1, b"ack"), (1, b"hello")]
    assert net.stats.requests_sent == 1
    assert net.stats.request_bytes == 5
    assert net.stats.replies_sent == 1
    assert net.stats.requests_received == {2: 1}
    assert net.stats.bytes_total == 8


def test_disconnected_node_neither_sends_nor_receives_even_in_flight() -> None:
    sched, net = make()
    got: list[tuple[int, bytes]] = []
    a = net.attach(1)
    net.attach(2, on_message=inbox(got))
    net.connect(1)
    net.connect(2)
    assert a.send(2, b"in flight", is_request=True)
    net.disconnect(2)  # before delivery: dropped on arrival
    sched.run_for(10 * MS)
    assert not a.send(2, b"while cut", is_request=True)  # the sender learns it is unreachable
    sched.run_for(10 * MS)
    assert got == []
    net.connect(2)
    a.send(2, b"back", is_request=True)
    sched.run_for(10 * MS)
    assert got == [(1, b"back")]


def test_partition_and_bridge() -> None:
    sched, net = make()
    got: dict[int, list[tuple[int, bytes]]] = {i: [] for i in (1, 2, 3)}
    ports = {i: net.attach(i, on_message=inbox(got[i])) for i in (1, 2, 3)}
    for i in (1, 2, 3):
        net.connect(i)
    net.partition([[1], [2]])  # 3 is a bridge
    assert not net.reachable(1, 2)
    assert net.reachable(1, 3) and net.reachable(2, 3)
    ports[1].send(2, b"x", is_request=True)
    ports[1].send(3, b"y", is_request=True)
    ports[3].send(2, b"z", is_request=True)
    sched.run_for(10 * MS)
    assert got[2] == [(3, b"z")]
    assert got[3] == [(1, b"y")]
    net.heal()
    assert net.reachable(1, 2)


def test_crash_drops_traffic_of_the_old_incarnation() -> None:
    sched, net = make()
    got: list[tuple[int, bytes]] = []
    old = net.attach(1)
    net.attach(2, on_message=inbox(got))
    net.connect(1)
    net.connect(2)
    old.send(2, b"from old", is_request=True)
    new = net.attach(1)  # node 1 restarted while its message was in flight
    assert not old.alive and new.alive
    assert not old.send(2, b"zombie", is_request=True)
    sched.run_for(10 * MS)
    assert got == []
    got2: list[tuple[int, bytes]] = []
    net.attach(2, on_message=inbox(got2))
    new.send(2, b"to old 2", is_request=True)
    net.attach(2, on_message=inbox(got2))  # 2 restarts before delivery
    sched.run_for(10 * MS)
    assert got2 == []


def test_unreliable_mode_loses_about_ten_percent_and_delays_requests() -> None:
    sched, net = make(7)
    arrivals: list[int] = []
    a = net.attach(1)
    net.attach(2, on_message=lambda src, p: arrivals.append(sched.now))
    net.connect(1)
    net.connect(2)
    net.reliable = False
    for _ in range(2000):
        a.send(2, b"r", is_request=True)
    sched.run_for(SECOND)
    assert 1700 <= len(arrivals) <= 1900
    assert max(arrivals) <= 27 * MS
    assert max(arrivals) >= 20 * MS


def test_long_reordering_holds_most_replies() -> None:
    sched, net = make(3)
    arrivals: list[int] = []
    a = net.attach(1)
    net.attach(2, on_message=lambda src, p: arrivals.append(sched.now))
    net.connect(1)
    net.connect(2)
    net.long_reordering = True
    for _ in range(600):
        a.send(2, b"reply", is_request=False)
    sched.run_for(3 * SECOND)
    held = sum(1 for t in arrivals if t >= 200 * MS)
    assert len(arrivals) == 600
    assert 350 <= held <= 450
    assert max(arrivals) < 2201 * MS


def echo_server(src: int, request: bytes, respond: Callable[[bytes], None]) -> None:
    respond(b"echo:" + request)


def test_call_returns_reply_exactly_once() -> None:
    sched, net = make()
    client = net.attach(10)
    net.attach(1, on_call=echo_server)
    net.connect(10)
    net.connect(1)
    results: list[bytes | None] = []
    client.call(1, b"ping", results.append, timeout=SECOND)
    sched.run_for(2 * SECOND)
    assert results == [b"echo:ping"]
    assert net.stats.requests_received == {1: 1}


def test_call_to_unreachable_server_fails_within_the_delay_bound() -> None:
    sched, net = make()
    client = net.attach(10)
    net.attach(1, on_call=echo_server)
    net.connect(10)
    net.long_delays = False
    done_at: list[int] = []
    results: list[bytes | None] = []

    def done(reply: bytes | None) -> None:
        results.append(reply)
        done_at.append(sched.now)

    client.call(1, b"ping", done, timeout=10 * SECOND)
    sched.run_for(20 * SECOND)
    assert results == [None]
    assert done_at[0] <= 100 * MS


def test_call_times_out_when_the_handler_never_responds() -> None:
    sched, net = make()
    client = net.attach(10)
    net.attach(1, on_call=lambda src, req, respond: None)
    net.connect(10)
    net.connect(1)
    results: list[bytes | None] = []
    client.call(1, b"ping", results.append, timeout=300 * MS)
    sched.run_for(SECOND)
    assert results == [None]


def test_unreliable_calls_run_handlers_whose_replies_are_lost() -> None:
    sched, net = make(11)
    client = net.attach(10)
    handled: list[bytes] = []

    def server(src: int, request: bytes, respond: Callable[[bytes], None]) -> None:
        handled.append(request)
        respond(request)

    net.attach(1, on_call=server)
    net.connect(10)
    net.connect(1)
    net.reliable = False
    results: list[bytes | None] = []
    for k in range(1000):
        client.call(1, str(k).encode(), results.append, timeout=SECOND)
    sched.run_for(2 * SECOND)
    assert len(results) == 1000
    ok = sum(1 for r in results if r is not None)
    # About 10 % of requests never reach the handler, about 10 % of replies are lost after it.
    assert 850 <= len(handled) <= 950
    assert 0.05 * len(handled) <= len(handled) - ok <= 0.15 * len(handled)


def test_crashed_caller_never_hears_back() -> None:
    sched, net = make()
    client = net.attach(10)
    net.attach(1, on_call=echo_server)
    net.connect(10)
    net.connect(1)
    results: list[bytes | None] = []
    client.call(1, b"ping", results.append, timeout=SECOND)
    net.detach(10)
    sched.run_for(2 * SECOND)
    assert results == []


def test_same_seed_same_run() -> None:
    def trace(seed: int) -> list[tuple[int, bytes]]:
        sched, net = make(seed)
        net.reliable = False
        net.long_reordering = True
        out: list[tuple[int, bytes]] = []
        a = net.attach(1)
        net.attach(2, on_message=lambda src, p: out.append((sched.now, p)))
        net.connect(1)
        net.connect(2)
        for k in range(200):
            a.send(2, str(k).encode(), is_request=k % 2 == 0)
        sched.run_for(5 * SECOND)
        return out

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)


def test_duplication_delivers_some_messages_twice() -> None:
    sched, net = make(9)
    got: list[tuple[int, bytes]] = []
    a = net.attach(1)
    net.attach(2, on_message=inbox(got))
    net.connect(1)
    net.connect(2)
    net.duplicate_fraction = 0.2
    for k in range(500):
        a.send(2, b"%d" % k, is_request=True)
    sched.run_for(SECOND)
    assert 550 <= len(got) <= 650
    assert {p for _, p in got} == {b"%d" % k for k in range(500)}
