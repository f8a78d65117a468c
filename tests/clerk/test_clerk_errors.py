"""The Err codes, defined once, and the typed errors the clerk turns them into: every failure is
either certainly not applied or of unknown outcome, and the retryable codes are asked again."""

from __future__ import annotations

import random
from typing import Any

import pytest

from clerk import (
    AsyncClerk,
    BadCommandError,
    BadRequestError,
    NotAppliedError,
    OperationTimeoutError,
    OutcomeUnknownError,
    RetryPolicy,
    ServerError,
    SessionExpiredError,
    StaleRequestError,
    UnexpectedReplyError,
)
from clerk.errors import RAISED_FOR, error_for
from kvapi import kvserver_rpc_pb2 as pb
from kvapi.codes import Err
from kvserver.service import KVService
from lincheck import HistoryRecorder, Status
from rpc import RpcController
from tests.clerk.clerk_testkit import local_cluster, run

FAST = RetryPolicy(initial_backoff_ms=5, max_backoff_ms=20)


def test_the_wire_strings_are_the_protocols_byte_for_byte() -> None:
    assert {err.name: err.wire for err in Err} == {
        "OK": b"OK",
        "NO_KEY": b"ErrNoKey",
        "WRONG_LEADER": b"ErrWrongLeader",
        "TIMEOUT": b"ErrTimeout",
        "STORAGE_UNAVAILABLE": b"ErrStorageUnavailable",
        "BAD_REQUEST": b"ErrBadRequest",
        "BAD_COMMAND": b"ErrBadCommand",
        "KEY_EXISTS": b"ErrKeyExists",
        "CAS_MISMATCH": b"ErrCasMismatch",
        "STALE_REQUEST": b"ErrStaleRequest",
        "SESSION_EXPIRED": b"ErrSessionExpired",
        "CONF_CHANGE_REFUSED": b"ErrConfChangeRefused",
        "CONF_CHANGE_NOT_YET": b"ErrConfChangeNotYet",
    }
    assert Err.NO_KEY == "ErrNoKey" and f"{Err.TIMEOUT}" == "ErrTimeout"
    assert Err.from_wire(b"ErrWrongLeader") is Err.WRONG_LEADER
    assert Err.from_wire(b"ErrFromTheFuture") == "ErrFromTheFuture"


def test_only_timeout_leader_and_storage_refusals_are_retryable_and_only_timeout_is_unknown() -> (
    None
):
    assert {e for e in Err if e.retryable} == {
        Err.WRONG_LEADER,
        Err.TIMEOUT,
        Err.STORAGE_UNAVAILABLE,
    }
    assert {e for e in Err if e.outcome_unknown} == {Err.TIMEOUT}


def test_every_failing_code_maps_to_a_typed_error_that_says_applied_or_not() -> None:
    assert set(RAISED_FOR) == set(Err) - {Err.OK}
    assert {err for err, cls in RAISED_FOR.items() if cls is OperationTimeoutError} == {
        e for e in Err if e.retryable
    }
    expected = {
        Err.BAD_REQUEST: BadRequestError,
        Err.BAD_COMMAND: BadCommandError,
        Err.STALE_REQUEST: StaleRequestError,
        Err.NO_KEY: UnexpectedReplyError,
        "ErrFromTheFuture": UnexpectedReplyError,
    }
    for err, cls in expected.items():
        error = error_for("put", err)
        assert type(error) is cls and error.err == err and isinstance(error, ServerError)
        assert f"put failed: the server answered {err}" == str(error)
    for cls in (BadRequestError, BadCommandError, StaleRequestError):
        assert issubclass(cls, NotAppliedError) and not issubclass(cls, OutcomeUnknownError)
    assert issubclass(UnexpectedReplyError, OutcomeUnknownError)


def test_timeouts_and_expired_sessions_are_typed_by_their_outcome() -> None:
    write = OperationTimeoutError("w", outcome_unknown=True)
    read = OperationTimeoutError("r", outcome_unknown=False)
    assert isinstance(write, OutcomeUnknownError) and not isinstance(write, NotAppliedError)
    assert isinstance(read, NotAppliedError) and not isinstance(read, OutcomeUnknownError)
    assert isinstance(write, TimeoutError) and write.outcome_unknown and str(write) == "w"
    retried = SessionExpiredError("put", outcome_unknown=True)
    first = SessionExpiredError("put", outcome_unknown=False)
    assert isinstance(retried, OutcomeUnknownError) and "UNKNOWN" in str(retried)
    assert isinstance(first, NotAppliedError) and "no effect" in str(first)
    assert retried.err is Err.SESSION_EXPIRED


class Answering:
    """Wraps a KVService: ``replies`` maps a method name to the reply it gets instead."""

    def __init__(self, inner: KVService, replies: dict[str, Any]) -> None:
        self.inner = inner
        self.replies = replies
        self.asked: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in self.replies:
            return getattr(self.inner, name)

        async def answer(request: Any, controller: RpcController) -> Any:
            self.asked[name] = self.asked.get(name, 0) + 1
            return self.replies[name]

        return answer


def test_a_refused_write_raises_not_applied_and_is_recorded_as_failed() -> None:
    history = HistoryRecorder()
    replies = {"PutAppend": pb.PutAppendReply(Err=b"ErrBadRequest")}

    async def main() -> None:
        async with (
            local_cluster(wrap=lambda i, s: Answering(s, replies)) as cluster,
            AsyncClerk(cluster.addresses, policy=FAST, history=history) as kv,
        ):
            with pytest.raises(BadRequestError, match=r"put failed: .* ErrBadRequest") as info:
                await kv.put("k", "v")
            assert isinstance(info.value, NotAppliedError)

    run(main())
    assert [op.status for op in history.history()] == [Status.FAIL]


def test_a_scan_answered_with_a_failing_code_raises_instead_of_returning_nothing() -> None:
    replies = {"Scan": pb.ScanReply(Err=b"ErrBadRequest")}

    async def main() -> None:
        async with (
            local_cluster(wrap=lambda i, s: Answering(s, replies)) as cluster,
            AsyncClerk(cluster.addresses, policy=FAST) as kv,
        ):
            with pytest.raises(BadRequestError, match="scan failed"):
                await kv.scan()
            with pytest.raises(BadRequestError, match="scan failed"):
                await kv.scan_stale()

    run(main())


@pytest.mark.parametrize("code", [b"ErrTimeout", b"ErrStorageUnavailable"])
def test_retryable_codes_are_asked_again_with_backoff_until_the_deadline(code: bytes) -> None:
    wrapped: list[Answering] = []
    replies = {"PutAppend": pb.PutAppendReply(Err=code), "Get": pb.GetReply(Err=code)}

    def wrap(i: int, service: KVService) -> Answering:
        wrapped.append(Answering(service, replies))
        return wrapped[-1]

    async def main() -> None:
        async with (
            local_cluster(wrap=wrap) as cluster,
            AsyncClerk(cluster.addresses, policy=FAST, rng=random.Random(1)) as kv,
        ):
            with pytest.raises(OperationTimeoutError, match=r"got no answer within 0\.5s") as w:
                await kv.put("k", "v", timeout=0.5)
            assert isinstance(w.value, OutcomeUnknownError)
            reason = "timed out waiting" if code == b"ErrTimeout" else "cannot persist"
            assert reason in str(w.value)
            with pytest.raises(OperationTimeoutError) as r:
                await kv.get("k", timeout=0.3)
            assert isinstance(r.value, NotAppliedError)

    run(main())
    # Every server was asked, more than once each: rounds with backoff between them.
    assert all(w.asked.get("PutAppend", 0) >= 2 for w in wrapped)
