"""6.5840's kvraft client load (``GenericTest``): clients, a partitioner, rounds, and its checks.

Theory of operation
-------------------
A :class:`LoadSpec` names the load and the faults. Each of its rounds, as in the course:

1. fresh clients start; each loops until told to stop: 50 % Append of ``"x <cli> <j> y"``,
   otherwise (with random keys, 10 % of the rest) a Put, else a Get, optionally pausing between
   operations (``think_ms``). Without random keys client ``cli`` owns key ``"<cli>"``, first
   Puts ``""`` there, and every Get must equal what it appended so far;
2. with partitions, after 1 s a partitioner re-splits the servers at random every 1.0-1.2 s
   (clients keep reaching every server, as labrpc partitions only servers); with clock jumps,
   every 0.5-1 s the leader's wall clock jumps, alternately ahead of anything before (one hour
   more each time) and back to true time or an hour behind;
3. after ``round_ms`` the clients and the partitioner are told to stop; the network is healed and
   an election timeout passes; with crashes every server is crashed, an election timeout later
   all restart and reconnect (clients may still be mid-operation through all this);
4. once every client has finished its last operation, a checking client reads each client's key:
   without random keys, each append of that client appears exactly once and in order;
5. with ``max_raft_state``, no server's Raft state exceeds 8 times it.

Problems are collected in the returned :class:`LoadReport` (so tests that inject bugs can show
they are found) rather than raised; the history of every operation is in the cluster's recorder
for the linearizability check. A client whose write times out with random keys records it as
``unknown`` and goes on; with owned keys a timeout ends the run (the expected value would be
unknowable), as the course's clerks would hang. A write refused ErrSessionExpired after a retry
is a problem (a client's session must not expire within its retry window) and ends that client.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from kvserver.testing.clerk import ClerkOptions, OperationTimeout, SessionExpired, SimClerk
from kvserver.testing.cluster import KVCluster
from lincheck import Operation, OpKind, Status
from raftcore.testing.process import Proc, wait_all
from raftcore.testing.scheduler import MS

__all__ = [
    "ELECTION_TIMEOUT_MS",
    "LoadReport",
    "LoadSpec",
    "check_append_order",
    "check_appends",
    "run_load",
]

ELECTION_TIMEOUT_MS = 1000
"""6.5840's electionTimeout, used for the load's waits."""

HOUR_MS = 3_600_000

CHECKER_OPTIONS = ClerkOptions(op_deadline_ms=60_000)
"""The checking client waits as long as it takes (like the course's clerks), whatever deadline
the load's clients have: its reads are the checks, not part of the load."""


@dataclass(frozen=True)
class LoadSpec:
    """One ``GenericTest``: the load, the faults, and the shape of its rounds."""

    clients: int
    unreliable: bool = False
    crash: bool = False
    partitions: bool = False
    random_keys: bool = False
    clock_jumps: bool = False
    """Make the leader's wall clock jump forward and back during each round."""
    rounds: int = 3
    round_ms: int = 5000
    """Virtual client time per round (the course's 5 s), after the partitioner's first second."""
    think_ms: int = 0
    """Mean pause between a client's operations, drawn uniformly in [0, 2 * think_ms]; 0 (the
    course) sends them back to back. A pause keeps the course's fault timeline while bounding
    the number of operations, which is what a Python simulation pays for."""

    def __post_init__(self) -> None:
        if self.clients < 1 or self.rounds < 1 or self.round_ms <= 0 or self.think_ms < 0:
            raise ValueError(f"a load needs clients, rounds and time: {self}")


@dataclass
class LoadReport:
    """What a load did and what went wrong (an empty ``problems`` means every check held)."""

    problems: list[str] = field(default_factory=list)
    appends: list[list[int]] = field(default_factory=list)
    """Per round, the number of appends/puts each client made."""
    max_log_size: int = 0
    """The largest Raft state seen at the end of a round (bytes)."""


class _Flag:
    __slots__ = ("raised",)

    def __init__(self) -> None:
        self.raised = False


def client_key(cli: int) -> bytes:
    """The key client ``cli`` owns without random keys."""
    return b"%d" % cli


def appended_value(cli: int, j: int) -> bytes:
    """Client ``cli``'s ``j``-th value (unique, so its occurrences can be counted)."""
    return b"x %d %d y" % (cli, j)


def check_appends(cli: int, value: bytes, count: int) -> list[str]:
    """6.5840's ``checkClntAppends``: each of ``cli``'s ``count`` values appears in ``value``
    exactly once and in order. Returns the problems found (empty if none)."""
    problems: list[str] = []
    last = -1
    for j in range(count):
        wanted = appended_value(cli, j)
        first = value.find(wanted)
        if first < 0:
            problems.append(f"client {cli}: missing {wanted!r} in the value of its key")
            continue
        if value.rfind(wanted) != first:
            problems.append(f"client {cli}: duplicate {wanted!r} in the value of its key")
        if first <= last:
            problems.append(f"client {cli}: {wanted!r} out of order in the value of its key")
        last = first
    return problems


def check_append_order(history: Sequence[Operation], key: str, value: str) -> list[str]:
    """Linearizability of a key that starts empty, then sees only appends of distinct values and
    is read once at the end (6.5840's one-key test).

    ``value`` must be the concatenation of the appends that took effect, each once: every ``ok``
    append and any ``unknown`` one, in an order that respects real time (an append that returned
    before another was called comes first). The values must be distinct and none a prefix of
    another, so ``value`` splits one way only. For this shape of history that is exactly
    linearizability, decided in quadratic time, where the general search is exponential: no read
    between the appends pins their order. Returns the problems found (empty if none).
    """
    remaining: dict[str, Operation] = {}
    for op in history:
        if op.key == key and op.op is OpKind.APPEND and op.status is not Status.FAIL:
            assert isinstance(op.value, str)
            if not op.value or op.value in remaining:
                return [f"key {key!r}: appended values are not distinct and non-empty"]
            remaining[op.value] = op
    problems: list[str] = []
    position = 0
    latest_call = -1
    while position < len(value):
        found = next((v for v in remaining if value.startswith(v, position)), None)
        if found is None:
            return [*problems, f"key {key!r}: {value[position:]!r} is not made of appends"]
        op = remaining.pop(found)
        if op.status is Status.OK and op.ret is not None and op.ret < latest_call:
            problems.append(
                f"key {key!r}: {found!r} returned before an append placed ahead of it was called"
            )
        latest_call = max(latest_call, op.call)
        position += len(found)
    problems += [
        f"key {key!r}: acknowledged append {v!r} is missing or repeated"
        for v, op in remaining.items()
        if op.status is Status.OK
    ]
    return problems


def _client(
    clerk: SimClerk,
    cli: int,
    rng: random.Random,
    spec: LoadSpec,
    stop: _Flag,
    problems: list[str],
) -> Proc[int]:
    j = 0
    last = b""
    own = client_key(cli)
    if not spec.random_keys:
        yield from clerk.put(own, last)
    while not stop.raised:
        key = client_key(rng.randrange(spec.clients)) if spec.random_keys else own
        value = appended_value(cli, j)
        if rng.randrange(1000) < 500:
            if spec.random_keys:
                yield from _tolerating_timeout(clerk.append(key, value))
            else:
                yield from clerk.append(key, value)
                last += value
            j += 1
        elif spec.random_keys and rng.randrange(1000) < 100:
            yield from _tolerating_timeout(clerk.put(key, value))
            j += 1
        elif spec.random_keys:
            yield from _tolerating_timeout(clerk.get(key))
        else:
            got = yield from clerk.get(key)
            if got != last:
                problems.append(
                    f"client {cli}: get({key!r}) returned {got!r}, wanted {last!r} (round op {j})"
                )
                last = got or b""  # report each divergence once, then follow the store
        if spec.think_ms:
            yield rng.randrange(2 * spec.think_ms * MS + 1)
    return j


def _ending_on_session_expiry(client: Proc[int], problems: list[str]) -> Proc[int]:
    # The client's appends so far cannot be checked: its count is lost with the exception.
    try:
        return (yield from client)
    except SessionExpired as exc:
        problems.append(str(exc))
        return 0


def _tolerating_timeout(op: Proc[object]) -> Proc[None]:
    # Recorded as unknown (write) or fail (read) by the clerk; the load goes on.
    with contextlib.suppress(OperationTimeout):
        yield from op


def _partitioner(cluster: KVCluster, stop: _Flag) -> Proc[None]:
    rng = cluster.rng
    while not stop.raised:
        sides = [rng.randrange(2) for _ in cluster.ids]
        cluster.partition(
            [i for i, side in zip(cluster.ids, sides, strict=True) if side == 0],
            [i for i, side in zip(cluster.ids, sides, strict=True) if side == 1],
        )
        yield (ELECTION_TIMEOUT_MS + rng.randrange(200)) * MS


def _clock_jumper(cluster: KVCluster, stop: _Flag) -> Proc[None]:
    rng = cluster.rng
    ahead = 0
    while not stop.raised:
        leader = cluster.leader()
        if leader is not None:
            # Each forward jump goes further than any clock so far: an unbounded clock follows.
            forward = (ahead // 2 + 1) * HOUR_MS
            offset = forward if ahead % 2 == 0 else rng.choice((0, -HOUR_MS))
            cluster.set_wall_clock_offset(leader, offset)
            ahead += 1
        yield (500 + rng.randrange(500)) * MS


def run_load(cluster: KVCluster, spec: LoadSpec) -> Proc[LoadReport]:
    """Run ``spec`` on ``cluster`` (a process: pass it to :meth:`KVCluster.run`)."""
    report = LoadReport()
    checker = cluster.make_clerk("checker", CHECKER_OPTIONS)
    max_raft_state = cluster.options.max_raft_state
    for _ in range(spec.rounds):
        stop_clients, stop_partitioner = _Flag(), _Flag()
        clients = [
            cluster.spawn(
                _ending_on_session_expiry(
                    _client(
                        cluster.make_clerk(),
                        cli,
                        random.Random(cluster.rng.getrandbits(64)),
                        spec,
                        stop_clients,
                        report.problems,
                    ),
                    report.problems,
                )
            )
            for cli in range(spec.clients)
        ]
        jumper = None
        if spec.clock_jumps:
            jumper = cluster.spawn(_clock_jumper(cluster, stop_partitioner))
        partitioner = None
        if spec.partitions:
            yield ELECTION_TIMEOUT_MS * MS  # some operations without interruption first
            partitioner = cluster.spawn(_partitioner(cluster, stop_partitioner))
        yield spec.round_ms * MS
        stop_clients.raised = stop_partitioner.raised = True
        if jumper is not None:
            yield from wait_all([jumper])
        if partitioner is not None:
            yield from wait_all([partitioner])
            cluster.connect_all()
            yield ELECTION_TIMEOUT_MS * MS  # let a term begin that sees every server
        if spec.crash:
            for i in cluster.ids:
                cluster.crash(i)
            yield ELECTION_TIMEOUT_MS * MS
            for i in cluster.ids:
                cluster.restart(i)
            cluster.connect_all()
        yield from wait_all(clients)
        counts = [proc.result for proc in clients]
        report.appends.append(counts)
        for cli in range(spec.clients):
            value = yield from checker.get(client_key(cli))
            if not spec.random_keys:
                report.problems += check_appends(cli, value or b"", counts[cli])
        if max_raft_state is not None:
            size = cluster.log_size()
            report.max_log_size = max(report.max_log_size, size)
            if size > 8 * max_raft_state:
                report.problems.append(f"logs were not trimmed ({size} > 8*{max_raft_state})")
    return report
