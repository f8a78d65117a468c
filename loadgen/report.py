"""What ``raftkv bench`` shows: the live progress line, the final report, and its JSON form.

The JSON object is a contract (consumed by ``bench/compare.py``, held by
``tests/loadgen/test_cli_bench.py``): fields may be added, never renamed. Latencies are of
successful operations only, in milliseconds; failed operations are counted in ``errors`` by kind
(``timeout``: no answer before the deadline, so a write's outcome is unknown; otherwise the
server's Err string, or the exception's type for anything unexpected).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadgen.stats import TIMEOUT, OpStats
from loadgen.workload import OPS

if TYPE_CHECKING:
    from loadgen.runner import BenchResult

__all__ = ["PERCENTILES", "format_report", "latency_ms", "to_json"]

PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))


def latency_ms(stats: OpStats) -> dict[str, float | None]:
    """mean, p50, p90, p99, p99.9 and max in milliseconds (all None when nothing succeeded)."""
    hist = stats.latency
    names = ["mean", *(name for name, _ in PERCENTILES), "max"]
    if hist.count == 0:
        return dict.fromkeys(names, None)
    figures = {"mean": round(hist.mean / 1e6, 4)}
    for name, q in PERCENTILES:
        figures[name] = round(hist.percentile(q) / 1e6, 4)
    figures["max"] = round(hist.max / 1e6, 4)
    return dict(figures)


def _throughput(ops: int, elapsed: float) -> float:
    return round(ops / elapsed, 1) if elapsed > 0 else 0.0


def to_json(result: BenchResult) -> dict[str, Any]:
    """The one JSON object ``raftkv bench --json`` prints."""
    config = result.config
    workload = config.workload
    total = result.measured.total()
    errors_by_kind = {TIMEOUT: 0, **total.errors}
    by_op: dict[str, Any] = {}
    for name, stats in zip(OPS, result.measured.by_op, strict=True):
        if name not in workload.mix.active():
            continue
        entry: dict[str, Any] = {
            "ops": stats.ops,
            "errors": stats.error_count,
            "errors_by_kind": dict(stats.errors),
            "throughput_ops_s": _throughput(stats.ops, result.elapsed_s),
            "latency_ms": latency_ms(stats),
        }
        if name == "cas":
            entry["applied"] = stats.applied
        by_op[name] = entry
    cpu = result.cpu_user_s + result.cpu_system_s
    preload = None
    if result.preload is not None:
        preload = {
            "keys": workload.keys,
            "written": result.preload.ops,
            "errors": result.preload.error_count,
            "seconds": round(result.preload_s, 3),
        }
    return {
        "target": {
            "servers": [[host, port] for host, port in result.servers],
            "spawned": config.spawn,
            "fsync": config.fsync if config.spawn else None,
            "lease_reads": config.lease_reads if config.spawn else None,
        },
        "workload": {
            "clients": workload.clients,
            "processes": config.processes,
            "duration_s": config.duration,
            "operations": config.operations,
            "warmup_s": config.warmup,
            "value_size": workload.value_size,
            "key_size": workload.key_size,
            "keys": workload.keys,
            "mix": workload.mix.as_dict(),
            "seed": workload.seed,
            "preload": config.preload,
            "timeout_s": config.op_timeout,
            "shared_clerk": config.shared_clerk,
        },
        "elapsed_s": round(result.elapsed_s, 4),
        "ops": total.ops,
        "errors": total.error_count,
        "errors_by_kind": errors_by_kind,
        "throughput_ops_s": _throughput(total.ops, result.elapsed_s),
        "latency_ms": latency_ms(total),
        "by_op": by_op,
        "client_cpu_s": {
            "user": round(result.cpu_user_s, 3),
            "system": round(result.cpu_system_s, 3),
        },
        "client_cpu_us_per_op": round(cpu / total.ops * 1e6, 1) if total.ops else None,
        "history": None if config.history is None else str(config.history),
        "preload": preload,
        "interrupted": result.interrupted,
    }


def _figures(latency: dict[str, float | None]) -> str:
    return "  ".join(f"{name} {value:.3f}" for name, value in latency.items() if value is not None)


def format_report(result: BenchResult) -> str:
    """The human-readable report (several lines, no trailing newline)."""
    data = to_json(result)
    config = result.config
    workload = data["workload"]
    target = data["target"]
    if config.spawn:
        where = (
            f"{config.spawn} spawned nodes (fsync {'on' if config.fsync else 'OFF'}, "
            f"{'lease' if config.lease_reads else 'ReadIndex'} reads)"
        )
    else:
        where = "cluster " + ", ".join(f"{h}:{p}" for h, p in target["servers"])
    if config.duration is not None:
        length = f"{config.duration:g} s"
    else:
        length = f"{config.operations:,} operations"
    mix = ", ".join(f"{name}={weight:.2f}" for name, weight in workload["mix"].items() if weight)
    lines = [
        f"raftkv bench: {where}",
        f"load: {workload['clients']} closed-loop clients in {workload['processes']} processes"
        + (" (one clerk per process), " if config.shared_clerk else ", ")
        + f"{length} after a {config.warmup:g} s warm-up"
        + (" (INTERRUPTED: partial figures)" if result.interrupted else ""),
        f"workload: {mix}; {workload['keys']:,} keys of {workload['key_size']} B, "
        f"values of {workload['value_size']} B, seed {workload['seed']}",
    ]
    if data["preload"] is not None:
        p = data["preload"]
        lines.append(
            f"preload: {p['written']:,} of {p['keys']:,} keys in {p['seconds']:.2f} s"
            + (f", {p['errors']} errors" if p["errors"] else "")
        )
    errors = ", ".join(f"{kind} {n}" for kind, n in data["errors_by_kind"].items() if n)
    lines += [
        f"throughput: {data['throughput_ops_s']:,.1f} ops/s "
        f"({data['ops']:,} ops in {data['elapsed_s']:.2f} s)",
        f"errors: {data['errors']:,}" + (f" ({errors})" if errors else ""),
        f"latency ms: {_figures(data['latency_ms'])}",
    ]
    for name, entry in data["by_op"].items():
        extra = f", {entry['applied']:,} applied" if name == "cas" else ""
        lines.append(
            f"  {name:<6} {entry['ops']:>9,} ops {entry['throughput_ops_s']:>11,.1f} ops/s  "
            f"errors {entry['errors']:,}{extra}  {_figures(entry['latency_ms'])}"
        )
    cpu = data["client_cpu_s"]
    per_op = data["client_cpu_us_per_op"]
    lines.append(
        f"client CPU: {cpu['user']:.2f} s user + {cpu['system']:.2f} s system"
        + (f" = {per_op:.0f} us per operation" if per_op is not None else "")
    )
    if data["history"] is not None:
        lines.append(f"history: {data['history']} (check it: python -m lincheck {data['history']})")
    return "\n".join(lines)
