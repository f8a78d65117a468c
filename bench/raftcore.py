"""Committed entries per second through a 3-node cluster on a zero-cost in-process network.

Run ``python -m bench.raftcore``. Three RawNodes, each Ready handled as the runner contract says
(ReadyPersister, then send, then apply, then advance); a sent message is stepped straight into
its target. Each round the leader gets ``batch`` proposals, then every node handles its Readys
once; the figure counts entries the *leader* has applied (committed by a majority and handed
out). Storage is MemoryStorage, which keeps references to the saved entries, so the figure is
the core's own per-entry cost. Rates are per wall-clock second and per CPU second of the process
(steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from raftcore import Config, RawNode, ReadyPersister, Role
from raftcore.memory_storage import MemoryStorage

__all__ = ["run"]

_IDS = (1, 2, 3)


def run(total: int, batch: int, payload: int = 16) -> tuple[float, float]:
    """Commit ``total`` entries of ``payload`` bytes, ``batch`` proposals per round.

    Returns (entries per wall-clock second, entries per CPU second of this process): on a
    shared machine the second is the steadier figure.
    """
    storages = {i: MemoryStorage(_IDS) for i in _IDS}
    nodes = {i: RawNode(Config(id=i, voters=_IDS), storages[i], random.Random(i)) for i in _IDS}
    persisters = {i: ReadyPersister(storages[i]) for i in _IDS}
    applied = dict.fromkeys(_IDS, 0)

    def pump(i: int) -> None:
        node = nodes[i]
        while node.has_ready():
            rd = node.ready()
            persisters[i].persist(rd)
            for m in rd.messages:
                nodes[m.to].step(m)
            for m in rd.persisted_messages:
                nodes[m.to].step(m)
            if rd.committed_entries:
                applied[i] = rd.committed_entries[-1].index
            node.advance(rd)

    nodes[1].campaign()
    while nodes[1].role is not Role.LEADER:
        for i in _IDS:
            pump(i)
    for i in _IDS:
        pump(i)
    leader = nodes[1]
    data = b"x" * payload
    target = applied[1] + total
    start, cpu_start = time.perf_counter(), time.process_time()
    proposed = 0
    while applied[1] < target:
        if proposed < total:
            for _ in range(min(batch, total - proposed)):
                leader.propose(data)
            proposed += batch
        for i in _IDS:
            pump(i)
    return total / (time.perf_counter() - start), total / (time.process_time() - cpu_start)


def main() -> None:
    """Print the median of several runs for batch sizes 1 and 64."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for batch in (1, 64):
        n = args.entries // 10 if batch == 1 else args.entries
        runs = [run(n, batch) for _ in range(args.runs)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(
            f"batch {batch:>2}: median {wall:>9,.0f} committed entries/s wall-clock, "
            f"{cpu:>9,.0f} per CPU second ({n} entries x {args.runs} runs)"
        )


if __name__ == "__main__":
    main()
