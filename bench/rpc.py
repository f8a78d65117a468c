"""Unary RPC throughput and latency: our RpcProvider/RpcChannel against grpcio's asyncio stack.

Both sides serve the same echo method (a ``google.protobuf.BytesValue`` with a 100-byte payload)
and are driven the same way: one connection, ``--concurrency`` calls in flight for
``--duration`` seconds after a short warm-up. Each server runs in its own process (started as
``python -m bench.rpc --serve ours|grpc``) so client and server do not share one event loop.
Runs alternate between the two stacks and the medians are reported. Besides wall-clock
throughput and latency, each run reports the CPU time spent per call by client and server
together, which a busy shared machine distorts much less than throughput.

Every process runs on uvloop when it is importable (grpcio's asyncio stack works on it, and
was faster on it than on the default loop here), so both stacks get the same event loop. grpc's
handlers are registered with its generic handler API, so no grpc code generation is needed.

    python -m bench.rpc [--duration 3] [--runs 3] [--concurrency 64] [--payload 100]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2
from google.protobuf.descriptor import ServiceDescriptor

from rpc import RpcChannel, RpcController, RpcProvider
from rpc.loop import install_event_loop

SERVICE = "Echo"
METHOD = "Echo"
GRPC_PATH = f"/bench.{SERVICE}/{METHOD}"
BytesValue = wrappers_pb2.BytesValue


def echo_service() -> ServiceDescriptor:
    """The benchmark's service, ``bench.Echo { rpc Echo(BytesValue) returns (BytesValue) }``,
    built at run time so the benchmark needs no generated code."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(f"bench.{SERVICE}")
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto(
        name="bench/echo.proto",
        package="bench",
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    service = proto.service.add(name=SERVICE)
    service.method.add(
        name=METHOD,
        input_type=".google.protobuf.BytesValue",
        output_type=".google.protobuf.BytesValue",
    )
    pool.Add(proto)
    return pool.FindServiceByName(f"bench.{SERVICE}")


async def _echo(request: BytesValue, controller: RpcController) -> BytesValue:
    return request


async def _serve_ours() -> None:
    provider = RpcProvider()
    provider.register(echo_service(), {METHOD: _echo})
    _, port = await provider.start("127.0.0.1", 0)
    await _announce_and_wait(port)
    await provider.close(grace=0.5)


async def _serve_grpc() -> None:
    import grpc

    async def echo(request: BytesValue, context: object) -> BytesValue:
        return request

    handler = grpc.unary_unary_rpc_method_handler(
        echo,
        request_deserializer=BytesValue.FromString,
        response_serializer=BytesValue.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(f"bench.{SERVICE}", {METHOD: handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await _announce_and_wait(port)
    await server.stop(0.5)


async def _announce_and_wait(port: int) -> None:
    """Tell the parent our port, serve until SIGTERM, then report the CPU seconds used."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    cpu = time.process_time()
    print(f"PORT {port}", flush=True)
    await stop.wait()
    print(f"CPU {time.process_time() - cpu}", flush=True)


@dataclass
class Result:
    """One measured run: calls and latencies in the measured window, and CPU use overall."""

    calls: int
    seconds: float
    latencies: list[float]
    all_calls: int
    client_cpu: float
    server_cpu: float = 0.0

    @property
    def cpu_per_call_us(self) -> float:
        """Client plus server CPU microseconds per call, warm-up included."""
        return (self.client_cpu + self.server_cpu) / self.all_calls * 1e6

    @property
    def rate(self) -> float:
        """Calls per second in the measured window."""
        return self.calls / self.seconds

    def percentile(self, fraction: float) -> float:
        """The latency (seconds) below which ``fraction`` of the measured calls completed."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _drive(
    call: Callable[[BytesValue], Awaitable[BytesValue]],
    payload: bytes,
    concurrency: int,
    duration: float,
    warmup: float,
) -> Result:
    """Keep ``concurrency`` calls in flight; measure the ``duration`` after ``warmup``."""
    request = BytesValue(value=payload)
    cpu = time.process_time()
    start = time.perf_counter() + warmup
    end = start + duration
    latencies: list[float] = []
    all_calls = 0

    async def worker() -> None:
        nonlocal all_calls
        now = time.perf_counter()
        while now < end:
            reply = await call(request)
            done = time.perf_counter()
            if len(reply.value) != len(payload):
                raise RuntimeError("echo returned a different payload")
            all_calls += 1
            if done >= start and done < end:
                latencies.append(done - now)
            now = done

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(len(latencies), duration, latencies, all_calls, time.process_time() - cpu)


async def _client_ours(port: int, args: argparse.Namespace) -> Result:
    async with RpcChannel("127.0.0.1", port) as channel:

        def call(request: BytesValue) -> Awaitable[BytesValue]:
            return channel.call(SERVICE, METHOD, request, BytesValue, timeout=5.0)

        return await _drive(call, b"x" * args.payload, args.concurrency, args.duration, args.warmup)


async def _client_grpc(port: int, args: argparse.Namespace) -> Result:
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        method = channel.unary_unary(
            GRPC_PATH,
            request_serializer=BytesValue.SerializeToString,
            response_deserializer=BytesValue.FromString,
        )

        def call(request: BytesValue) -> Awaitable[BytesValue]:
            result: Awaitable[BytesValue] = method(request, timeout=5.0)
            return result

        return await _drive(call, b"x" * args.payload, args.concurrency, args.duration, args.warmup)


def run_once(stack: str, args: argparse.Namespace) -> Result:
    """Start a ``stack`` server process, measure a client against it, stop the server."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.rpc", "--serve", stack],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{stack} server did not start (said {line!r})")
        port = int(line.split()[1])
        client = _client_ours if stack == "ours" else _client_grpc
        result = asyncio.run(client(port, args))
        server.terminate()
        rest, _ = server.communicate(timeout=10)
        result.server_cpu = float(rest.split("CPU ", 1)[1])
        return result
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def _summary(results: list[Result]) -> tuple[float, float, float, float]:
    """Median over runs of (calls/s, p50 ms, p99 ms, CPU us per call)."""
    return (
        statistics.median(r.rate for r in results),
        statistics.median(r.percentile(0.50) * 1000 for r in results),
        statistics.median(r.percentile(0.99) * 1000 for r in results),
        statistics.median(r.cpu_per_call_us for r in results),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one line per stack plus the throughput ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench.rpc", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first")
    parser.add_argument("--runs", type=int, default=3, help="runs per stack; medians reported")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--payload", type=int, default=100, help="payload bytes per call")
    parser.add_argument("--serve", choices=["ours", "grpc"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    loop_name = install_event_loop()
    if args.serve is not None:
        asyncio.run(_serve_ours() if args.serve == "ours" else _serve_grpc())
        return 0
    results: dict[str, list[Result]] = {"ours": [], "grpc": []}
    for run in range(args.runs):
        for stack in ("ours", "grpc"):
            result = run_once(stack, args)
            results[stack].append(result)
            print(
                f"run {run + 1} {stack:5} {result.rate:9.0f} calls/s  "
                f"p50 {result.percentile(0.5) * 1000:6.2f} ms  "
                f"p99 {result.percentile(0.99) * 1000:6.2f} ms  "
                f"cpu {result.cpu_per_call_us:6.0f} us/call",
                flush=True,
            )
    print(
        f"unary, {args.payload}-byte payload, 1 connection, {args.concurrency} concurrent calls, "
        f"{args.duration:g} s x {args.runs} runs (medians), {loop_name} event loop:"
    )
    summaries = {stack: _summary(results[stack]) for stack in results}
    for stack, label in (("ours", "raftkv rpc"), ("grpc", "grpcio aio")):
        rate, p50, p99, cpu = summaries[stack]
        print(
            f"  {label:20} {rate:9.0f} calls/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"cpu {cpu:6.0f} us/call"
        )
    ours, grpc = summaries["ours"], summaries["grpc"]
    print(f"  throughput ratio ours/grpcio: {ours[0] / grpc[0]:.2f}x")
    print(f"  CPU per call ratio grpcio/ours: {grpc[3] / ours[3]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
