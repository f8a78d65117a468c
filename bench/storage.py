"""Benchmark of DiskStorage.save(): appends and fsyncs per second by batch size, fsync on and off.

Run ``python -m bench.storage`` (``--help`` for the knobs). Each configuration saves batches of
100-byte entries, each batch with a hard state (as a Ready that advances the commit index does),
into a fresh temporary directory for ``--seconds``, ``--repeats`` times; the table shows medians.
Rates are per second spent inside ``save()`` (building the entries is the caller's cost, not the
storage's). With fsync on, every save is exactly one fdatasync, so fsyncs/s equals saves/s. The
first rows are the floor the disk allows: the same bytes per batch appended with os.write and
fdatasync, no framing or encoding.

A last table gives the latency of one fdatasync as a 3-node cluster on this one disk sees it:
``--writers`` processes (3) each append a 4 KB batch and fdatasync it, then pause ``--pause-ms``
(3 ms, about a node's cycle under load), for ``--seconds`` x 4; the disk answers a steady stream
and a paced one differently, so both a pause of 0 and the given one are shown.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass

from kvserver.storage import DiskStorage
from raftcore.raftpb_pb2 import Entry, HardState

ENTRY_BYTES = 100
BATCH_SIZES = (1, 16, 256)


@dataclass(frozen=True)
class Figures:
    """Medians of one configuration."""

    fsync: bool
    batch: int
    appends_per_second: float
    saves_per_second: float


def measure(*, fsync: bool, batch: int, seconds: float, repeats: int, base_dir: str) -> Figures:
    """Median appends/s and saves/s of ``repeats`` runs of ``seconds`` each."""
    appends: list[float] = []
    saves: list[float] = []
    payload = b"x" * ENTRY_BYTES
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(dir=base_dir) as data_dir:
            storage = DiskStorage(data_dir, fsync=fsync)
            index = 0
            count = 0
            elapsed = 0.0
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                entries = [
                    Entry(term=1, index=index + k, data=payload) for k in range(1, batch + 1)
                ]
                index += batch
                hard_state = HardState(term=1, vote=1, commit=index)
                start = time.perf_counter()
                storage.save(hard_state, entries)
                elapsed += time.perf_counter() - start
                count += 1
            storage.close()
        appends.append(count * batch / elapsed)
        saves.append(count / elapsed)
    return Figures(fsync, batch, statistics.median(appends), statistics.median(saves))


def measure_raw(*, batch: int, seconds: float, repeats: int, base_dir: str) -> Figures:
    """The floor to compare with: the same bytes appended by os.write + fdatasync, no framing."""
    appends: list[float] = []
    saves: list[float] = []
    chunk = b"x" * (ENTRY_BYTES * batch)
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(dir=base_dir) as data_dir:
            fd = os.open(os.path.join(data_dir, "raw"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            count = 0
            start = time.perf_counter()
            deadline = start + seconds
            while time.perf_counter() < deadline:
                os.write(fd, chunk)
                os.fdatasync(fd)
                count += 1
            elapsed = time.perf_counter() - start
            os.close(fd)
        appends.append(count * batch / elapsed)
        saves.append(count / elapsed)
    return Figures(True, batch, statistics.median(appends), statistics.median(saves))


def _paced_syncs(
    path: str, seconds: float, pause_s: float, out: multiprocessing.Queue[list[float]]
) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    chunk = b"x" * 4096
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        os.write(fd, chunk)
        start = time.perf_counter()
        os.fdatasync(fd)
        latencies.append(time.perf_counter() - start)
        if pause_s:
            time.sleep(pause_s)
    os.close(fd)
    out.put(latencies)


def measure_sync_latency(
    *, writers: int, pause_ms: float, seconds: float, base_dir: str
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, total syncs/s) of ``writers`` processes each syncing its own file."""
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[float]] = context.Queue()
    with tempfile.TemporaryDirectory(dir=base_dir) as data_dir:
        procs = [
            context.Process(
                target=_paced_syncs,
                args=(os.path.join(data_dir, f"w{i}"), seconds, pause_ms / 1000, out),
            )
            for i in range(writers)
        ]
        for proc in procs:
            proc.start()
        latencies = sorted(x for _ in procs for x in out.get())
        for proc in procs:
            proc.join()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return p50, p99, len(latencies) / seconds


def main() -> None:
    """Parse the options, run every configuration, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per configuration")
    parser.add_argument("--dir", default=None, help="where the temporary directories go")
    parser.add_argument("--writers", type=int, default=3, help="concurrent syncing processes")
    parser.add_argument("--pause-ms", type=float, default=3.0, help="pause between their syncs")
    args = parser.parse_args()
    # fsync=False logs its warning once per directory; once is enough here.
    logging.getLogger("kvserver.storage").setLevel(logging.ERROR)
    base_dir = args.dir or tempfile.gettempdir()
    print(
        f"# DiskStorage.save, {ENTRY_BYTES}-byte entries, {args.repeats} x {args.seconds} s runs, "
        f"medians; {platform.platform()}, Python {platform.python_version()}, dir {base_dir}"
    )
    print("| what | fsync | batch | appends/s | fsyncs/s |")
    print("|---|---|---:|---:|---:|")
    for batch in BATCH_SIZES:
        raw = measure_raw(
            batch=batch, seconds=args.seconds, repeats=args.repeats, base_dir=base_dir
        )
        print(
            f"| raw write+fdatasync (floor) | on | {batch} | {raw.appends_per_second:,.0f} "
            f"| {raw.saves_per_second:,.0f} |"
        )
    for fsync in (True, False):
        for batch in BATCH_SIZES:
            figures = measure(
                fsync=fsync,
                batch=batch,
                seconds=args.seconds,
                repeats=args.repeats,
                base_dir=base_dir,
            )
            mode = "on" if fsync else "off"
            syncs = f"{figures.saves_per_second:,.0f}" if fsync else "0"
            appends = f"{figures.appends_per_second:,.0f}"
            print(f"| DiskStorage.save | {mode} | {batch} | {appends} | {syncs} |")
    print()
    print(f"# one fdatasync of a 4 KB append, {args.writers} processes on one disk at once")
    print("| pause between syncs | p50 | p99 | syncs/s (all writers) |")
    print("|---:|---:|---:|---:|")
    for pause_ms in (0.0, args.pause_ms):
        p50, p99, rate = measure_sync_latency(
            writers=args.writers, pause_ms=pause_ms, seconds=args.seconds * 4, base_dir=base_dir
        )
        print(f"| {pause_ms:g} ms | {p50:.2f} ms | {p99:.2f} ms | {rate:,.0f} |")


if __name__ == "__main__":
    main()
