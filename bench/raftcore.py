"""Committed entries per second through a 3-node cluster on a zero-cost in-process network.

Run ``python -m bench.raftcore``. Three RawNodes over MemoryStorage, each Ready handled as the
runner contract says (ReadyPersister, then send, then apply, then advance); a sent message is
stepped straight into its target. Each round the leader gets ``batch`` proposals, then every
node handles its Readys once; the figure counts entries the *leader* has applied (committed by
a majority and handed out), so it measures the core's own per-entry cost plus MemoryStorage's.
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


def run(total: int, batch: int, payload: int = 16) -> float:
    """Commit ``total`` entries of ``payload`` bytes, ``batch`` proposals per round; entries/s."""
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
    start = time.perf_counter()
    proposed = 0
    while applied[1] < target:
        if proposed < total:
            for _ in range(min(batch, total - proposed)):
                leader.propose(data)
            proposed += batch
        for i in _IDS:
            pump(i)
    return total / (time.perf_counter() - start)


def main() -> None:
    """Print the median of several runs for batch sizes 1 and 64."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for batch in (1, 64):
        n = args.entries // 10 if batch == 1 else args.entries
        rates = [run(n, batch) for _ in range(args.runs)]
        print(
            f"batch {batch:>2}: median {statistics.median(rates):>10,.0f} committed entries/s "
            f"({n} entries x {args.runs} runs, min {min(rates):,.0f}, max {max(rates):,.0f})"
        )


if __name__ == "__main__":
    main()
