"""Benchmark of DiskStorage.save(): appends and fsyncs per second by batch size, fsync on and off.

Run ``python -m bench.storage`` (``--help`` for the knobs). Each configuration saves batches of
100-byte entries, each batch with a hard state (as a Ready that advances the commit index does),
into a fresh temporary directory for ``--seconds``, ``--repeats`` times; the table shows medians.
Rates are per second spent inside ``save()`` (building the entries is the caller's cost, not the
storage's). With fsync on, every save is exactly one fdatasync, so fsyncs/s equals saves/s.
"""

from __future__ import annotations

import argparse
import logging
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


def main() -> None:
    """Parse the options, run every configuration, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per configuration")
    parser.add_argument("--dir", default=None, help="where the temporary directories go")
    args = parser.parse_args()
    # fsync=False logs its warning once per directory; once is enough here.
    logging.getLogger("kvserver.storage").setLevel(logging.ERROR)
    base_dir = args.dir or tempfile.gettempdir()
    print(
        f"# DiskStorage.save, {ENTRY_BYTES}-byte entries, {args.repeats} x {args.seconds} s runs, "
        f"medians; {platform.platform()}, Python {platform.python_version()}, dir {base_dir}"
    )
    print("| fsync | batch | appends/s | fsyncs/s |")
    print("|---|---:|---:|---:|")
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
            print(f"| {mode} | {batch} | {figures.appends_per_second:,.0f} | {syncs} |")


if __name__ == "__main__":
    main()
