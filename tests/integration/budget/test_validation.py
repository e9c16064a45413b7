"""Bad input: INVALID_ARGUMENT naming the bad field, and nothing written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from oracle.budget.v1 import budget_service_pb2 as pb

from tests.harness import new_user_id
from tests.integration.budget.servers import Budget, failure

HUGE = "x" * 100_000


def _reserve(**changes: Any) -> Callable[[Budget, str], Any]:
    def call(budget: Budget, user: str) -> Any:
        fields: dict[str, Any] = {
            "user_id": user,
            "purpose": "scan:BTC-EUR",
            "model": "gpt-4o-mini",
            "estimated_prompt_tokens": 100,
            "requested_max_tokens": 100,
        }
        fields.update(changes)
        return budget.stub.ReserveCall(pb.ReserveCallRequest(**fields))

    return call


RESERVE_CASES = [
    (_reserve(user_id=""), "user_id"),
    (_reserve(user_id="bad user"), "user_id"),
    (_reserve(user_id="u" * 65), "user_id"),
    (_reserve(purpose=""), "purpose"),
    (_reserve(purpose="   "), "purpose"),
    (_reserve(purpose=HUGE), "purpose"),
    (_reserve(purpose="nul\x00byte"), "purpose"),
    (_reserve(model=""), "model"),
    (_reserve(model="m" * 201), "model"),
    (_reserve(estimated_prompt_tokens=0), "estimated_prompt_tokens"),
    (_reserve(estimated_prompt_tokens=-5), "estimated_prompt_tokens"),
    (_reserve(estimated_prompt_tokens=2**62), "estimated_prompt_tokens"),
    (_reserve(requested_max_tokens=0), "requested_max_tokens"),
    (_reserve(requested_max_tokens=-1), "requested_max_tokens"),
]


def _written(budget: Budget, user: str) -> tuple[Any, ...]:
    with budget.postgres.admin() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM oracle.gpt_usage_log WHERE user_id = %(u)s),"
            " (SELECT count(*) FROM oracle.budget_limits WHERE user_id = %(u)s),"
            " (SELECT count(*) FROM oracle.audit_events WHERE user_id = %(u)s)",
            {"u": user},
        ).fetchone()
    assert row is not None
    return tuple(row)


def _assert_invalid(budget: Budget, call: Callable[[], Any], field: str) -> None:
    error = failure(call)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_ARGUMENT"
    assert [v.field for v in error.field_violations] == [field]


@pytest.mark.parametrize(("call", "field"), RESERVE_CASES, ids=[f"{i}-{f}" for i, (_, f) in enumerate(RESERVE_CASES)])
def test_bad_reserve_requests_are_refused_naming_the_field(budget: Budget, call: Any, field: str) -> None:
    user = new_user_id("bad")
    _assert_invalid(budget, lambda: call(budget, user), field)
    assert _written(budget, user) == (0, 0, 0)


def test_every_bad_field_is_named_at_once(budget: Budget) -> None:
    error = failure(lambda: _reserve(user_id="", purpose="", model="", estimated_prompt_tokens=-1)(budget, ""))
    assert [v.field for v in error.field_violations] == ["user_id", "purpose", "model", "estimated_prompt_tokens"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reservation_id": ""}, "reservation_id"),
        ({"reservation_id": "not-a-uuid"}, "reservation_id"),
        ({"reservation_id": HUGE}, "reservation_id"),
        ({"user_id": "bad user"}, "user_id"),
        ({"prompt_tokens": -1}, "prompt_tokens"),
        ({"completion_tokens": -1}, "completion_tokens"),
        ({"cost_micros": -1}, "cost_micros"),
        ({"cost_micros": 2**62}, "cost_micros"),
    ],
)
def test_bad_commit_requests_change_nothing(budget: Budget, changes: dict[str, Any], field: str) -> None:
    user = new_user_id("bad")
    reservation = budget.reserve(user)
    before = budget.rows(user)
    fields: dict[str, Any] = {
        "user_id": user,
        "reservation_id": reservation.reservation_id,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "cost_micros": 1,
    }
    fields.update(changes)
    _assert_invalid(budget, lambda: budget.stub.CommitCall(pb.CommitCallRequest(**fields)), field)
    assert budget.rows(user) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reservation_id": "1234"}, "reservation_id"),
        ({"user_id": ""}, "user_id"),
        ({"reason": HUGE}, "reason"),
    ],
)
def test_bad_release_requests_change_nothing(budget: Budget, changes: dict[str, Any], field: str) -> None:
    user = new_user_id("bad")
    reservation = budget.reserve(user)
    before = budget.rows(user)
    fields: dict[str, Any] = {"user_id": user, "reservation_id": reservation.reservation_id, "reason": "r"}
    fields.update(changes)
    _assert_invalid(budget, lambda: budget.stub.ReleaseCall(pb.ReleaseCallRequest(**fields)), field)
    assert budget.rows(user) == before


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (None, "limits"),
        (pb.Limits(daily_calls=-1, hourly_calls=0), "limits.daily_calls"),
        (pb.Limits(daily_calls=5, hourly_calls=-1), "limits.hourly_calls"),
        (pb.Limits(daily_calls=5, hourly_calls=6), "limits.hourly_calls"),
        (pb.Limits(daily_calls=5, hourly_calls=5, daily_tokens=-1), "limits.daily_tokens"),
        (pb.Limits(daily_calls=5, hourly_calls=5, daily_cost_micros=-1), "limits.daily_cost_micros"),
        (pb.Limits(daily_calls=2**62, hourly_calls=5), "limits.daily_calls"),
    ],
)
def test_bad_limits_are_refused_and_not_stored(budget: Budget, limits: pb.Limits | None, field: str) -> None:
    user = new_user_id("bad")
    request = pb.SetLimitsRequest(user_id=user) if limits is None else pb.SetLimitsRequest(user_id=user, limits=limits)
    _assert_invalid(budget, lambda: budget.stub.SetLimits(request), field)
    assert _written(budget, user) == (0, 0, 0)


def test_bad_usage_request_names_the_user_id(budget: Budget) -> None:
    _assert_invalid(budget, lambda: budget.stub.GetUsage(pb.GetUsageRequest(user_id="no spaces allowed")), "user_id")
