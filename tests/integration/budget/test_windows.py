"""The budget windows (docs/design.md#budget-zero-overshoot), with time moved on the database's clock (never slept):
the hourly window rolls, the daily window resets at 00:00 UTC, and every row counts by its
reservation time except released ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
from oracle.budget.v1 import budget_service_pb2 as pb

from tests.harness import new_user_id
from tests.integration.budget.servers import NOON, Budget


def test_the_hourly_window_rolls(budget: Budget) -> None:
    user = new_user_id("hour")
    budget.set_limits(user, daily=100, hourly=1)
    budget.reserve(user)  # at NOON

    budget.clock.set(NOON + timedelta(minutes=59))  # the call is 59 minutes old: it counts
    refused = budget.refused(user)
    assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.reason == "BUDGET_EXHAUSTED"
    assert [v.subject for v in refused.quota_violations] == [f"user:{user}/hourly_calls"]
    assert refused.retry_after == timedelta(minutes=1)  # when the call leaves the window
    assert budget.usage(user)[pb.WINDOW_HOURLY_CALLS].used == 1

    budget.clock.set(NOON + timedelta(minutes=61))  # 61 minutes old: it no longer counts
    assert budget.usage(user)[pb.WINDOW_HOURLY_CALLS].used == 0
    assert budget.reserve(user).status == pb.RESERVATION_STATUS_RESERVED


def test_retry_after_names_the_row_whose_leaving_makes_room(budget: Budget) -> None:
    # Limits lowered below the usage: room comes back only when enough old rows have left.
    user = new_user_id("hour")
    budget.set_limits(user, daily=100, hourly=3)
    for minute in (0, 10, 20):
        budget.clock.set(NOON + timedelta(minutes=minute))
        budget.reserve(user)
    budget.set_limits(user, daily=100, hourly=2)
    budget.clock.set(NOON + timedelta(minutes=30))
    refused = budget.refused(user)
    # Three counted, limit two: the 12:00 and 12:10 rows must leave, i.e. at 12:10 + 60 min.
    assert refused.retry_after == timedelta(minutes=40)


def test_the_daily_window_resets_at_midnight_utc(budget: Budget) -> None:
    user = new_user_id("day")
    budget.set_limits(user, daily=2, hourly=2)
    evening = datetime(2031, 3, 12, 22, 0, tzinfo=UTC)
    budget.clock.set(evening)
    budget.reserve(user)
    budget.clock.set(evening.replace(hour=23, minute=59, second=59))
    budget.reserve(user)

    budget.clock.set(evening.replace(hour=23, minute=59, second=59, microsecond=500000))
    refused = budget.refused(user)
    assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    # The 22:00 call left the rolling hour, so only the day is exhausted, until midnight.
    assert [v.subject for v in refused.quota_violations] == [f"user:{user}/daily_calls"]
    assert refused.retry_after == timedelta(milliseconds=500)
    daily = budget.usage(user)[pb.WINDOW_DAILY_CALLS]
    assert (daily.used, daily.limit, daily.remaining) == (2, 2, 0)
    assert daily.resets_at.ToDatetime(tzinfo=UTC) == datetime(2031, 3, 13, tzinfo=UTC)

    budget.clock.set(datetime(2031, 3, 13, 0, 0, tzinfo=UTC))  # a new UTC day
    assert budget.usage(user)[pb.WINDOW_DAILY_CALLS].used == 0
    # The 23:59:59 call is still in the rolling hour: hourly 1 of 2, so one more fits.
    assert budget.usage(user)[pb.WINDOW_HOURLY_CALLS].used == 1
    budget.reserve(user)
    refused = budget.refused(user)
    assert [v.subject for v in refused.quota_violations] == [f"user:{user}/hourly_calls"]


def _insert(budget: Budget, user: str, status: str, reserved_at: datetime) -> None:
    with budget.postgres.admin() as conn:
        conn.execute(
            "INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status, max_tokens,"
            " estimated_tokens, estimated_cost_micros, prompt_tokens, completion_tokens, cost_micros,"
            " reserved_at, expires_at, committed_at, released_at)"
            " VALUES (%s, %s, 'seed', 'gpt-4o-mini', %s, 100, 150, 60, %s, %s, %s, %s, %s, %s, %s)",
            (
                str(uuid.uuid4()),
                user,
                status,
                *((40, 30, 20) if status == "committed" else (None, None, None)),
                reserved_at,
                reserved_at + timedelta(minutes=5),
                reserved_at if status == "committed" else None,
                reserved_at if status == "released" else None,
            ),
        )


def test_every_status_but_released_counts_by_reservation_time(budget: Budget) -> None:
    user = new_user_id("rows")
    budget.set_limits(user, daily=100, hourly=3)
    _insert(budget, user, "committed", NOON - timedelta(minutes=61))  # out of the hour, in the day
    _insert(budget, user, "expired", NOON - timedelta(minutes=59))
    _insert(budget, user, "committed", NOON - timedelta(minutes=30))
    _insert(budget, user, "released", NOON - timedelta(minutes=20))  # never counts
    _insert(budget, user, "reserved", NOON - timedelta(minutes=10))
    _insert(budget, user, "reserved", NOON - timedelta(days=1))  # yesterday

    usage = budget.usage(user)
    assert usage[pb.WINDOW_HOURLY_CALLS].used == 3
    assert usage[pb.WINDOW_DAILY_CALLS].used == 4
    # Actuals for committed rows (40 + 30 tokens, cost 20), estimates for the others (150, 60).
    assert usage[pb.WINDOW_DAILY_TOKENS].used == 70 + 150 + 70 + 150
    assert usage[pb.WINDOW_DAILY_COST].used == 20 + 60 + 20 + 60
    refused = budget.refused(user)
    assert [v.subject for v in refused.quota_violations] == [f"user:{user}/hourly_calls"]
