"""raftkv against PySyncObj (and the C++ original's quoted figure) in one invocation.

Run ``python -m bench.compare``. For each workload it measures our cluster through
``raftkv bench --spawn 3 --json`` (a subprocess per run: three fsyncing nodes, clients over the
network in worker processes) and PySyncObj at its strongest: a 3-node ``ReplDict`` with the load
generated inside the leader's process through its callback API (see ``bench.pysyncobj_peer``),
batching on and off, at several in-flight levels; its best configuration is its figure.

Workloads (``--only``):

- ``put-seq``: one client, sequential committed 100-byte Puts: latency p50/p99 (and ops/s).
  PySyncObj: one request in flight; its best p50 over the batching settings.
- ``put-64``: ``--clients`` (64) clients, committed 100-byte Puts: throughput. PySyncObj: its
  best committed writes/s over every configuration measured.
- ``get-64``: ``--clients`` clients, linearizable Gets: throughput. PySyncObj has no read that
  goes through consensus (its reads are local dict lookups in the caller's process), so there is
  no PySyncObj figure to compare against.

Every figure is the median over ``--runs`` runs of ``--duration`` s (after ``--warmup`` s). The
C++ original is not run: its figure from its own write-up is quoted and labelled so. Progress goes
to stderr; stdout gets the table, or with ``--json`` one JSON object with every run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pysyncobj.version import VERSION as PYSYNCOBJ_VERSION

from bench.pysyncobj_peer import DIVERGENCE_WARNING, DURABILITY, PeerCluster, PeerError

__all__ = [
    "NO_PYSYNCOBJ_READS",
    "WORKLOADS",
    "Settings",
    "build_rows",
    "config_label",
    "git_commit",
    "machine",
    "main",
    "measure_ours",
    "measure_pysyncobj",
    "percentile",
    "render",
    "run_comparison",
]

_REPO_ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("put-seq", "put-64", "get-64")
CPP_PUT_GET_STEP_MS = 32.0
CPP_ONE_CLIENT_OPS_S = 31.0
CPP_SOURCE = "C++ original (quoted, not run)"
NO_PYSYNCOBJ_READS = "n/a: PySyncObj has no linearizable read"
# Seconds a spawned bench may take beyond warm-up plus duration: spawn, election, preload, stop.
OURS_OVERHEAD_S = 90.0


@dataclass(frozen=True)
class Settings:
    """What the user asked for (see ``--help``)."""

    workloads: tuple[str, ...]
    duration_s: float
    warmup_s: float
    runs: int
    clients: int
    processes: int
    keys: int
    inflight: tuple[int, ...]
    bench_args: tuple[str, ...] = ()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of a non-empty sorted sequence."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return float(sorted_values[int(rank) - 1])


_STARTED = time.monotonic()


def _say(message: str) -> None:
    print(f"[compare {time.monotonic() - _STARTED:5.1f}s] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- our side


def _ours_command(settings: Settings, workload: str) -> list[str]:
    clients, processes = (1, 1) if workload == "put-seq" else (settings.clients, settings.processes)
    read_ratio = "1.0" if workload == "get-64" else "0.0"
    # Gets read keys written beforehand; Puts need none, so they skip the preload.
    return [
        sys.executable, "-m", "cli.raftkv", "bench", "--spawn", "3",
        "--clients", str(clients), "--processes", str(processes),
        "--duration", str(settings.duration_s), "--warmup", str(settings.warmup_s),
        "--value-size", "100", "--key-size", "16", "--keys", str(settings.keys),
        "--read-ratio", read_ratio, "--json",
    ] + ([] if workload == "get-64" else ["--no-preload"]) + list(settings.bench_args)  # fmt: skip


def _run_ours_once(command: list[str], timeout_s: float) -> dict[str, Any]:
    """One ``raftkv bench`` run's JSON; raises RuntimeError when it fails or says nothing."""
    proc = subprocess.Popen(
        command,
        cwd=_REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"raftkv bench took over {timeout_s:.0f} s") from exc
    finally:
        # SIGTERM lets the bench stop the nodes it spawned; SIGKILL only if it will not.
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=15.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    tail = (err.strip().splitlines() or ["(no stderr)"])[-1]
    if proc.returncode != 0:
        raise RuntimeError(f"raftkv bench exited with {proc.returncode}: {tail}")
    try:
        result: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"raftkv bench printed no JSON object: {tail}") from exc
    return result


def measure_ours(settings: Settings, workload: str) -> dict[str, Any]:
    """``settings.runs`` runs of ``workload`` on a freshly spawned cluster each; their medians."""
    command = _ours_command(settings, workload)
    timeout_s = settings.warmup_s + settings.duration_s + OURS_OVERHEAD_S
    runs: list[dict[str, Any]] = []
    for i in range(settings.runs):
        _say(f"ours {workload}: run {i + 1}/{settings.runs}")
        runs.append(_run_ours_once(command, timeout_s))
    return {
        "command": " ".join(command[1:]),
        "fsync": all(r["target"].get("fsync", False) for r in runs),
        "throughput_ops_s": statistics.median(r["throughput_ops_s"] for r in runs),
        "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in runs),
        "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "runs": runs,
    }


# ----------------------------------------------------------------------------- PySyncObj side


def _summarize_peer_runs(batch: bool, inflight: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["committed"] / r["window_s"] for r in runs]
    p50s, p99s = [], []
    for r in runs:
        latencies = sorted(r["latencies_ms"])
        if latencies:
            p50s.append(percentile(latencies, 50))
            p99s.append(percentile(latencies, 99))
    errors: dict[str, int] = {}
    for r in runs:
        for name, count in r["errors"].items():
            errors[name] = errors.get(name, 0) + count
    return {
        "batch": batch,
        "inflight": inflight,
        "throughput_ops_s": statistics.median(rates),
        "throughput_runs": [round(x, 1) for x in rates],
        "p50_ms": statistics.median(p50s) if p50s else None,
        "p99_ms": statistics.median(p99s) if p99s else None,
        "errors": errors,
        "undrained_runs": sum(1 for r in runs if not r["drained"]),
    }


def measure_pysyncobj(settings: Settings, levels: Sequence[int]) -> dict[str, Any]:
    """Every (batching, in-flight level) configuration, ``settings.runs`` runs each, medians.

    One cluster per batching setting serves all its levels (each run drains before the next).
    """
    configs: list[dict[str, Any]] = []
    divergence_warnings = 0
    for batch in (False, True):
        with PeerCluster(batch=batch, keys=settings.keys) as cluster:
            for inflight in levels:
                label = f"pysyncobj batch {'on' if batch else 'off'}, {inflight} in flight"
                runs = []
                for i in range(settings.runs):
                    _say(f"{label}: run {i + 1}/{settings.runs}")
                    runs.append(cluster.load(inflight, settings.warmup_s, settings.duration_s))
                configs.append(_summarize_peer_runs(batch, inflight, runs))
        divergence_warnings += sum(DIVERGENCE_WARNING in line for line in cluster.warnings())
    return {
        "durability": DURABILITY,
        "load": "closed loop inside the leader's process, committed = callback without error",
        "configs": configs,
        "divergence_warnings": divergence_warnings,
    }


def config_label(config: dict[str, Any]) -> str:
    """``batch on, 1000 in flight`` for a PySyncObj configuration summary."""
    return f"batch {'on' if config['batch'] else 'off'}, {config['inflight']} in flight"


# ----------------------------------------------------------------------------- the report


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or not theirs:
        return None
    return ours / theirs


def build_rows(
    settings: Settings, ours: dict[str, dict[str, Any]], theirs: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The table's rows: per workload and metric, ours, PySyncObj's best and its config, ratio."""
    configs: list[dict[str, Any]] = [] if theirs is None else theirs["configs"]
    rows: list[dict[str, Any]] = []

    def add(
        workload: str,
        metric: str,
        key: str,
        best: dict[str, Any] | None,
        peer_note: str | None,
        cpp: str,
    ) -> None:
        mine = ours.get(workload, {})
        our_value = mine.get(key)
        their_value = None if best is None else best[key]
        rows.append(
            {
                "workload": workload,
                "metric": metric,
                "ours": our_value,
                "ours_error": mine.get("error"),
                "pysyncobj": their_value,
                "pysyncobj_config": None if best is None else config_label(best),
                "pysyncobj_note": peer_note,
                "ratio_ours_theirs": _ratio(our_value, their_value),
                "cpp_quoted": cpp,
            }
        )

    if "put-seq" in settings.workloads:
        singles = [c for c in configs if c["inflight"] == 1 and c["p50_ms"] is not None]
        best = min(singles, key=lambda c: c["p50_ms"]) if singles else None
        step = f"~{CPP_PUT_GET_STEP_MS:.0f} ms per Put+Get step"
        add("put-seq", "p50 latency ms (lower better)", "p50_ms", best, None, step)
        add("put-seq", "p99 latency ms (lower better)", "p99_ms", best, None, step)
        cpp_rate = f"~{CPP_ONE_CLIENT_OPS_S:.0f} ops/s"
        add("put-seq", "committed ops/s", "throughput_ops_s", best, None, cpp_rate)
    if "put-64" in settings.workloads:
        best = max(configs, key=lambda c: c["throughput_ops_s"]) if configs else None
        add("put-64", f"committed Puts/s, {settings.clients} clients", "throughput_ops_s", best,
            None, "not quoted")  # fmt: skip
    if "get-64" in settings.workloads:
        add("get-64", f"linearizable Gets/s, {settings.clients} clients", "throughput_ops_s",
            None, NO_PYSYNCOBJ_READS, "not quoted")  # fmt: skip
    return rows


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


_FSYNC_WORDS = {True: "on", False: "off", None: "unknown"}


def render(report: dict[str, Any]) -> str:
    """The human-readable report: header, comparison table, every PySyncObj configuration."""
    m = report["machine"]
    s = report["settings"]
    lines = [
        "raftkv vs PySyncObj (3 nodes on 127.0.0.1; indicative: a shared machine)",
        f"started {report['date']}  commit {report['commit']}",
        f"machine {m['platform']}, {m['cpus']} CPUs, Python {m['python']}",
        f"runs {s['runs']} x {s['duration_s']} s (warm-up {s['warmup_s']} s), median shown; "
        f"{s['clients']} clients over {s['processes']} processes; keys {s['keys']}, "
        "16-byte keys, 100-byte values",
        f"ours: raftkv bench --spawn 3 {' '.join(s['bench_args'])}".rstrip()
        + f", fsync {_FSYNC_WORDS[report['ours_fsync']]}; "
        f"PySyncObj {report['pysyncobj_version']}: {DURABILITY}",
        "",
    ]
    header = ("workload", "metric", "ours", "PySyncObj best (config)", "ours/theirs", CPP_SOURCE)
    table = [header]
    for row in report["rows"]:
        ours = "failed" if row["ours_error"] else _fmt(row["ours"])
        if row["pysyncobj_note"]:
            theirs = row["pysyncobj_note"]
        elif row["pysyncobj"] is None:
            theirs = "-"
        else:
            theirs = f"{_fmt(row['pysyncobj'])} ({row['pysyncobj_config']})"
        ratio = "-" if row["ratio_ours_theirs"] is None else f"{row['ratio_ours_theirs']:.2f}"
        table.append((row["workload"], row["metric"], ours, theirs, ratio, row["cpp_quoted"]))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if "get-64" in s["workloads"]:
        lines.append(
            "get-64: PySyncObj's reads are local dict lookups in a node's own process, never "
            "through consensus, so it has no figure to compare."
        )
    for workload, result in report["ours"].items():
        if "error" in result:
            lines.append(f"ours {workload} FAILED: {result['error']}")
    theirs = report["pysyncobj"]
    if theirs is not None:
        lines += ["", "PySyncObj, every configuration (median committed writes/s; runs):"]
        for c in theirs["configs"]:
            p50, p99 = _fmt(c["p50_ms"]), _fmt(c["p99_ms"])
            extra = f"  errors {c['errors']}" if c["errors"] else ""
            if c["undrained_runs"]:
                extra += f"  undrained runs {c['undrained_runs']}"
            lines.append(
                f"  {config_label(c):<28} {_fmt(c['throughput_ops_s']):>8}/s  "
                f"p50 {p50} ms  p99 {p99} ms  runs {c['throughput_runs']}{extra}"
            )
        if theirs["divergence_warnings"]:
            lines.append(
                f"  PySyncObj logged {theirs['divergence_warnings']} 'state machine may have "
                "diverged' warnings (followers truncating applied entries)"
            )
    elif report.get("pysyncobj_error"):
        lines.append(f"PySyncObj FAILED: {report['pysyncobj_error']}")
    lines.append(f"total {report['elapsed_s']:.0f} s")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Platform, CPU count and Python version of this machine."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=_REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of this checkout, ``+dirty`` when tracked files differ from it.

    None outside a git tree.
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None
    changed = _git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if changed else "")


def _positive_levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"in-flight levels must be >= 1: {text}")
    return levels


def _workloads(text: str) -> tuple[str, ...]:
    chosen = tuple(w.strip() for w in text.split(","))
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown workload(s) {unknown}; choose from {WORKLOADS}")
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--only",
        type=_workloads,
        default=",".join(WORKLOADS),
        help="workloads, e.g. put-seq,put-64",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds before each run"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median shown)")
    parser.add_argument("--clients", type=int, default=64, help="our clients for put-64 and get-64")
    parser.add_argument("--processes", type=int, default=2, help="our client worker processes")
    parser.add_argument("--keys", type=int, default=1000, help="distinct keys")
    parser.add_argument(
        "--pysyncobj-inflight",
        type=_positive_levels,
        default="1,64,1000,5000",
        help="PySyncObj in-flight levels (1 gives the latency figure)",
    )
    parser.add_argument(
        "--bench-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for every raftkv bench run, repeatable: --bench-arg=--shared-clerk",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser  # fmt: skip


def _levels(settings: Settings) -> tuple[int, ...]:
    """The in-flight levels the chosen workloads need: 1 for put-seq, the rest for put-64."""
    wanted = set()
    if "put-seq" in settings.workloads:
        wanted.add(1)
    if "put-64" in settings.workloads:
        wanted.update(settings.inflight)
    return tuple(sorted(wanted))


def _fsync_of(ours: dict[str, dict[str, Any]]) -> bool | None:
    """True/False when every measured run of ours had fsync on/off; None when none ran."""
    modes = {r["fsync"] for r in ours.values() if "error" not in r}
    return modes.pop() if len(modes) == 1 else None


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through every ``finally``, which stops the processes started so far.
    raise SystemExit(128 + signum)


def run_comparison(settings: Settings) -> dict[str, Any]:
    """Measure every chosen workload on both sides; the report ``--json`` prints.

    A side that fails is recorded (``ours[w]["error"]``, ``pysyncobj_error``), not raised, so
    the other figures still come out. Every process started is stopped before this returns or
    raises (KeyboardInterrupt, or SystemExit from SIGTERM once ``main`` installed its handler).
    """
    started = time.monotonic()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    ours: dict[str, dict[str, Any]] = {}
    for workload in settings.workloads:
        try:
            ours[workload] = measure_ours(settings, workload)
        except (RuntimeError, KeyError, TypeError) as exc:
            _say(f"ours {workload} failed: {exc}")
            ours[workload] = {"error": str(exc)}
    theirs: dict[str, Any] | None = None
    their_error: str | None = None
    levels = _levels(settings)
    if levels:
        try:
            theirs = measure_pysyncobj(settings, levels)
        except (PeerError, OSError) as exc:
            _say(f"pysyncobj failed: {exc}")
            their_error = str(exc)
    return {
        "date": date,
        "commit": git_commit(),
        "machine": machine(),
        "shared_machine_note": "indicative: other work shared the machine",
        "settings": {
            "workloads": list(settings.workloads),
            "duration_s": settings.duration_s,
            "warmup_s": settings.warmup_s,
            "runs": settings.runs,
            "clients": settings.clients,
            "processes": settings.processes,
            "keys": settings.keys,
            "pysyncobj_inflight": list(levels),
            "bench_args": list(settings.bench_args),
        },
        "ours_fsync": _fsync_of(ours),
        "ours": ours,
        "pysyncobj_version": PYSYNCOBJ_VERSION,
        "pysyncobj": theirs,
        "pysyncobj_error": their_error,
        "cpp_quoted": {
            "source": CPP_SOURCE,
            "one_client_ops_s": CPP_ONE_CLIENT_OPS_S,
            "put_get_step_ms": CPP_PUT_GET_STEP_MS,
        },
        "rows": build_rows(settings, ours, theirs),
        "elapsed_s": time.monotonic() - started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print it.

    Exit status: 0 every figure measured, 1 some side failed, 2 bad arguments, 130 interrupted
    (Ctrl-C), 143 SIGTERM; every process started is stopped on each of these paths.
    """
    args = _parser().parse_args(argv)
    if (
        args.duration <= 0
        or args.warmup < 0
        or min(args.runs, args.clients, args.processes, args.keys) < 1
    ):
        print(
            "compare: need --duration > 0, --warmup >= 0 and --runs, --clients, --processes, "
            "--keys >= 1",
            file=sys.stderr,
        )
        return 2
    settings = Settings(
        workloads=args.only,
        duration_s=args.duration,
        warmup_s=args.warmup,
        runs=args.runs,
        clients=args.clients,
        processes=args.processes,
        keys=args.keys,
        inflight=args.pysyncobj_inflight,
        bench_args=tuple(args.bench_arg),
    )
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        report = run_comparison(settings)
    except KeyboardInterrupt:
        print("compare: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    print(json.dumps(report, indent=2) if args.json else render(report))
    failed = report["pysyncobj_error"] is not None or any(
        "error" in r for r in report["ours"].values()
    )
    return 1 if failed else 0  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
