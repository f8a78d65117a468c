"""HistoryRecorder: explicit and context-manager recording, clocks, threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from pathlib import Path

import pytest

from lincheck import (
    HistoryError,
    HistoryRecorder,
    Operation,
    OpKind,
    Status,
    check_history,
    read_history,
)


def _counting_clock() -> HistoryRecorder:
    ticks = itertools.count(100, 10)
    return HistoryRecorder(clock=lambda: next(ticks))


def test_call_and_ret_use_the_injected_clock_or_explicit_times() -> None:
    recorder = _counting_clock()
    put = recorder.call("c1", "put", "x", "a")
    get = recorder.call("c2", OpKind.GET, "x", at=5)
    assert recorder.ret(get, "a", at=300) == Operation(
        "c2", OpKind.GET, "x", None, "a", 5, 300, Status.OK
    )
    recorder.ret(put)
    assert recorder.history() == [
        Operation("c1", OpKind.PUT, "x", "a", None, 100, 110, Status.OK),
        Operation("c2", OpKind.GET, "x", None, "a", 5, 300, Status.OK),
    ]


def test_pending_operations_are_reported_as_unknown() -> None:
    recorder = _counting_clock()
    recorder.call("c1", "append", "x", "a")
    pending = Operation("c1", OpKind.APPEND, "x", "a", None, 100, None, Status.UNKNOWN)
    assert recorder.history() == [pending]
    assert recorder.history(include_pending=False) == []


def test_bad_input_is_rejected_and_loses_nothing() -> None:
    recorder = _counting_clock()
    with pytest.raises(HistoryError, match="unknown op"):
        recorder.call("c1", "incr", "x")
    with pytest.raises(HistoryError, match="needs a string value"):
        recorder.call("c1", "put", "x")
    handle = recorder.call("c1", "delete", "x")
    with pytest.raises(HistoryError, match="true or false"):
        recorder.ret(handle, "OK")
    # The operation is still pending and can be finished correctly.
    assert recorder.history()[0].status is Status.UNKNOWN
    with pytest.raises(HistoryError, match="unknown status 'maybe'"):
        recorder.ret(handle, True, status="maybe")
    recorder.ret(handle, True, status="ok")
    with pytest.raises(HistoryError, match="no pending operation"):
        recorder.ret(handle, True)
    assert [op.output for op in recorder.history()] == [True]


def test_context_manager_records_ok_fail_and_unknown() -> None:
    recorder = _counting_clock()
    with recorder.operation("c1", "get", "x") as pending:
        pending.output = "v"
    with pytest.raises(TimeoutError), recorder.operation("c1", "put", "x", "a"):
        raise TimeoutError
    with pytest.raises(ConnectionRefusedError), recorder.operation("c1", "put", "x", "b") as p:
        p.fail()
        raise ConnectionRefusedError
    with recorder.operation("c1", "put", "x", "c") as pending:
        pending.unknown()
    statuses = [(op.value, op.status, op.output) for op in recorder.history()]
    assert statuses == [
        (None, Status.OK, "v"),
        ("a", Status.UNKNOWN, None),
        ("b", Status.FAIL, None),
        ("c", Status.UNKNOWN, None),
    ]


def test_threads_on_an_atomic_store_produce_a_linearizable_history(tmp_path: Path) -> None:
    recorder = HistoryRecorder()
    store: dict[str, str] = {}
    store_lock = threading.Lock()

    def client(client_id: int) -> None:
        rng = random.Random(client_id)
        for _ in range(150):
            key = rng.choice("abc")
            if rng.random() < 0.5:
                with recorder.operation(client_id, "get", key) as pending, store_lock:
                    pending.output = store.get(key)
            else:
                suffix = f"{client_id}."
                with recorder.operation(client_id, "append", key, suffix), store_lock:
                    store[key] = store.get(key, "") + suffix

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    history = recorder.history()
    assert len(history) == 900
    assert check_history(history).ok
    path = tmp_path / "threads.jsonl"
    recorder.write(path)
    assert check_history(read_history(path)).ok


def test_asyncio_tasks_record_and_cancellation_is_unknown() -> None:
    recorder = HistoryRecorder()
    store: dict[str, str] = {}

    async def client(client_id: int) -> None:
        for n in range(50):
            with recorder.operation(client_id, "put", "k", f"{client_id}:{n}"):
                await asyncio.sleep(0)
                store["k"] = f"{client_id}:{n}"
            with recorder.operation(client_id, "get", "k") as pending:
                await asyncio.sleep(0)
                pending.output = store.get("k")

    async def stuck() -> None:
        with recorder.operation("stuck", "put", "k", "never"):
            await asyncio.Event().wait()

    async def main() -> None:
        blocked = asyncio.create_task(stuck())
        await asyncio.gather(*(client(i) for i in range(4)))
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked

    asyncio.run(main())
    history = recorder.history()
    assert [op.status for op in history if op.client_id == "stuck"] == [Status.UNKNOWN]
    assert check_history(history).ok
