"""SkipList against dict and sortedcontainers.SortedDict, same keys, same run.

Run ``python -m bench.skiplist [--sizes 100000,1000000] [--repeat 3]``. For each size the keys
are random 16-byte strings (the value stored is the key itself, so values cost no memory of
their own). Each row times one operation over every key (or ``--probes`` of them) and prints
microseconds of this process's CPU time (``time.process_time``, so other processes on a shared
machine do not count) per operation, the median of ``--repeat`` runs (sizes of 10^6 and above
run once). Each row runs the three maps back to back.

- insert:  fill an empty map in random key order (``m[k] = v``)
- insert asc: fill an empty map in ascending key order (the skip list's finger path)
- get:     ``m[k]`` for keys in random order
- ceiling: the first entry >= a random probe key (an ordered search; dict has none)
- scan100: the 100 entries from a random start key, as (key, value) pairs
- iterate: every (key, value) pair in order (dict: insertion order), per entry
- delete:  ``del m[k]`` for every key in random order
- load:    build from sorted pairs (SkipList.from_sorted, SortedDict(pairs), dict(pairs))
- dump/load snapshot: the skip list's own snapshot format, per entry (no peer)

Memory is what tracemalloc counts for building the map from sorted pairs (keys and values are
allocated before and shared by all three), in bytes per entry.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from typing import Any

from sortedcontainers import SortedDict

from skiplist import SkipList, dump_chunks, load_chunks

__all__ = ["main", "measure"]

_IMPLS = ("dict", "SortedDict", "SkipList")


def _new(impl: str, rng: random.Random) -> Any:
    if impl == "dict":
        return {}
    if impl == "SortedDict":
        return SortedDict()
    return SkipList(rng)


def _from_sorted(impl: str, pairs: list[tuple[bytes, bytes]], rng: random.Random) -> Any:
    if impl == "dict":
        return dict(pairs)
    if impl == "SortedDict":
        return SortedDict(pairs)
    return SkipList.from_sorted(pairs, rng)


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        fn()
        return time.process_time() - start
    finally:
        gc.enable()


def _fill(m: Any, order: list[bytes]) -> None:
    for k in order:
        m[k] = k


def _get(m: Any, order: list[bytes]) -> None:
    for k in order:
        m[k]


def _iterate(m: Any) -> None:
    for _ in m.items():
        pass


def _delete(m: Any, order: list[bytes]) -> None:
    for k in order:
        del m[k]


def _ceiling(impl: str, m: Any, probes: list[bytes]) -> Callable[[], object]:
    if impl == "SortedDict":

        def run() -> object:
            keys = m.keys()
            bisect = m.bisect_left
            n = len(m)
            for p in probes:
                i = bisect(p)
                if i < n:
                    k = keys[i]
                    m[k]
            return None

        return run
    ceiling = m.ceiling

    def run_skiplist() -> object:
        for p in probes:
            ceiling(p)
        return None

    return run_skiplist


def _scan(impl: str, m: Any, starts: list[bytes]) -> Callable[[], object]:
    if impl == "SortedDict":

        def run() -> object:
            irange = m.irange
            for s in starts:
                [(k, m[k]) for k in islice(irange(s), 100)]
            return None

        return run
    scan = m.range

    def run_skiplist() -> object:
        for s in starts:
            list(scan(s, None, 100))
        return None

    return run_skiplist


def measure(n: int, repeat: int, probes: int, seed: int) -> dict[str, dict[str, float]]:
    """Microseconds per operation (and bytes per entry under "memory") for each row and map."""
    rng = random.Random(seed)
    keys = [rng.randbytes(16) for _ in range(n)]
    shuffled = keys[:]
    rng.shuffle(shuffled)
    ascending = sorted(keys)
    pairs = [(k, k) for k in ascending]
    sample = shuffled[: min(probes, n)]
    misses = [rng.randbytes(16) for _ in range(min(probes, n))]
    scan_starts = misses[: max(1, min(probes, n) // 100)]
    runs = repeat if n < 1_000_000 else 1
    times: dict[str, dict[str, list[float]]] = {}

    def timed(row: str, impl: str, fn: Callable[[], object], ops: int) -> None:
        times.setdefault(row, {}).setdefault(impl, []).append(_timed(fn) / ops * 1e6)

    # Each row runs the three maps back to back, so a change in the machine's load between
    # rows shifts all three alike and the ratios stay meaningful.
    for r in range(runs):
        maps = {impl: _new(impl, random.Random(r)) for impl in _IMPLS}
        for impl, m in maps.items():
            timed("insert", impl, partial(_fill, m, shuffled), n)
        for impl in _IMPLS:
            timed("insert asc", impl, partial(_fill, _new(impl, random.Random(r)), ascending), n)
        for impl, m in maps.items():
            timed("get", impl, partial(_get, m, sample), len(sample))
        for impl in _IMPLS[1:]:
            timed("ceiling", impl, _ceiling(impl, maps[impl], misses), len(misses))
        for impl in _IMPLS[1:]:
            timed("scan100", impl, _scan(impl, maps[impl], scan_starts), len(scan_starts))
        for impl, m in maps.items():
            timed("iterate", impl, partial(_iterate, m), n)
        for impl, m in maps.items():
            timed("delete", impl, partial(_delete, m, shuffled), n)
        del maps
        for impl in _IMPLS:
            timed("load", impl, partial(_from_sorted, impl, pairs, random.Random(r)), n)
    rows = {
        row: {impl: statistics.median(f) for impl, f in by.items()} for row, by in times.items()
    }
    rows["memory B/entry"] = {}
    for impl in _IMPLS:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        built = _from_sorted(impl, pairs, random.Random(0))
        rows["memory B/entry"][impl] = (tracemalloc.get_traced_memory()[0] - before) / n
        tracemalloc.stop()
        del built

    sl = SkipList.from_sorted(pairs, random.Random(0))
    chunks: list[bytes] = []
    rows["snapshot dump"] = {"SkipList": _timed(lambda: chunks.extend(dump_chunks(sl))) / n * 1e6}
    rows["snapshot load"] = {
        "SkipList": _timed(lambda: load_chunks(chunks, random.Random(0))) / n * 1e6
    }
    return rows


def _table(n: int, rows: dict[str, dict[str, float]]) -> Iterator[str]:
    yield f"n = {n:,}   (CPU microseconds per operation; memory in bytes per entry)"
    yield (
        f"{'operation':<16}{'dict':>10}{'SortedDict':>12}{'SkipList':>10}{'SL/SD':>8}{'SL/dict':>9}"
    )
    for row, figures in rows.items():
        cells = [figures.get(impl) for impl in _IMPLS]
        text = "".join(
            f"{'-' if c is None else f'{c:.2f}':>{w}}"
            for c, w in zip(cells, (10, 12, 10), strict=True)
        )
        sl, sd, d = figures.get("SkipList"), figures.get("SortedDict"), figures.get("dict")
        ratio_sd = f"{sl / sd:.2f}x" if sl and sd else "-"
        ratio_d = f"{sl / d:.2f}x" if sl and d else "-"
        yield f"{row:<16}{text}{ratio_sd:>8}{ratio_d:>9}"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run every size, print one table per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated map sizes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure below 10^6")
    parser.add_argument("--probes", type=int, default=200_000, help="keys probed by get/ceiling")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        rows = measure(n, args.repeat, args.probes, args.seed)
        print("\n".join(_table(n, rows)))
        print()


if __name__ == "__main__":
    main()
