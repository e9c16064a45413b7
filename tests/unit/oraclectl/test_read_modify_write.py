"""oraclectl's read-modify-write: a conflict is read again, unless the caller pinned a version."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from oraclectl.exitcodes import ExitCode
from oraclectl.session import RpcFailure, read_modify_write
from shared.errors import ErrorReport


def _failing(code: grpc.StatusCode, failures: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def update() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= failures:
            raise RpcFailure("executor", ErrorReport(code=code, reason=code.name, message="no"))
        return f"written on attempt {len(calls)}"

    return calls, update


def test_a_conflict_is_read_again_up_to_the_attempts() -> None:
    calls, update = _failing(grpc.StatusCode.ABORTED, failures=2)
    assert read_modify_write(update, expected_version=None, attempts=3) == "written on attempt 3"
    assert calls == [1, 2, 3]


def test_the_last_attempts_conflict_is_the_answer() -> None:
    calls, update = _failing(grpc.StatusCode.ABORTED, failures=5)
    with pytest.raises(RpcFailure) as caught:
        read_modify_write(update, expected_version=None, attempts=2)
    assert caught.value.exit_code is ExitCode.CONFLICT
    assert calls == [1, 2]


def test_a_pinned_version_or_another_failure_is_never_retried() -> None:
    calls, update = _failing(grpc.StatusCode.ABORTED, failures=1)
    with pytest.raises(RpcFailure):
        read_modify_write(update, expected_version=7, attempts=3)
    assert calls == [1]
    calls, update = _failing(grpc.StatusCode.FAILED_PRECONDITION, failures=1)
    with pytest.raises(RpcFailure):
        read_modify_write(update, expected_version=None, attempts=3)
    assert calls == [1]
