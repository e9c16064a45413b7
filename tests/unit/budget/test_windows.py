"""The pure window rules: what fits, how many tokens a grant gets, when a window frees up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.budget.pricing import ModelPrice
from services.budget.windows import (
    Bounds,
    Limits,
    Shortfall,
    Usage,
    Window,
    decide,
    frees_at,
    hourly_rows_to_leave,
    report,
    retry_after,
)

PRICE = ModelPrice(Decimal("0.15"), Decimal("0.60"))
FREE = ModelPrice(Decimal(0), Decimal(0))
NOW = datetime(2031, 3, 12, 0, 30, tzinfo=UTC)
NONE_USED = Usage(0, 0, 0, 0)


def _decide(limits: Limits, usage: Usage = NONE_USED, prompt: int = 100, requested: int = 500, cap: int = 1000):
    return decide(limits, usage, prompt_tokens=prompt, requested_max_tokens=requested, cap=cap, price=PRICE)


def test_bounds_use_the_utc_day_and_the_rolling_hour() -> None:
    bounds = Bounds.at(NOW)
    assert bounds.day_start == datetime(2031, 3, 12, tzinfo=UTC)
    assert bounds.day_end == datetime(2031, 3, 13, tzinfo=UTC)
    assert bounds.hour_start == datetime(2031, 3, 11, 23, 30, tzinfo=UTC)  # reaches into yesterday


def test_a_call_fits_below_both_call_limits() -> None:
    decision = _decide(Limits(2, 1), Usage(1, 0, 0, 0))
    assert decision.grant is not None
    assert decision.grant.max_tokens == 500
    assert decision.grant.estimated_tokens == 600
    assert decision.grant.estimated_cost_micros == 15 + 300


@pytest.mark.parametrize(
    ("usage", "windows"),
    [
        (Usage(2, 0, 0, 0), [Window.DAILY_CALLS]),
        (Usage(1, 1, 0, 0), [Window.HOURLY_CALLS]),
        (Usage(5, 5, 0, 0), [Window.DAILY_CALLS, Window.HOURLY_CALLS]),
    ],
)
def test_every_full_call_window_is_reported(usage: Usage, windows: list[Window]) -> None:
    decision = _decide(Limits(2, 1), usage)
    assert decision.grant is None
    assert [s.window for s in decision.shortfalls] == windows


def test_max_tokens_is_the_least_of_request_cap_tokens_and_cost() -> None:
    assert _decide(Limits(9, 9), requested=500, cap=200).grant.max_tokens == 200  # type: ignore[union-attr]
    tokens = Limits(9, 9, daily_tokens=1000)
    assert _decide(tokens, Usage(0, 0, 850, 0)).grant.max_tokens == 50  # type: ignore[union-attr]
    cost = Limits(9, 9, daily_cost_micros=100)
    # 100 prompt tokens cost 15; (100 - 15) / 0.60 = 141.67 -> 141 completion tokens.
    assert _decide(cost).grant.max_tokens == 141  # type: ignore[union-attr]


def test_token_and_cost_windows_refuse_when_nothing_is_left() -> None:
    assert [s.window for s in _decide(Limits(9, 9, daily_tokens=1000), Usage(0, 0, 900, 0)).shortfalls] == [
        Window.DAILY_TOKENS
    ]
    assert [s.window for s in _decide(Limits(9, 9, daily_cost_micros=100), Usage(0, 0, 0, 90)).shortfalls] == [
        Window.DAILY_COST
    ]


def test_zero_token_and_cost_limits_mean_no_limit() -> None:
    decision = _decide(Limits(9, 9, 0, 0), Usage(0, 0, 10**12, 10**12))
    assert decision.grant is not None


def test_a_free_model_is_not_limited_by_cost() -> None:
    decision = decide(
        Limits(9, 9, daily_cost_micros=1),
        Usage(0, 0, 0, 1),
        prompt_tokens=5,
        requested_max_tokens=7,
        cap=10,
        price=FREE,
    )
    assert decision.grant is not None and decision.grant.max_tokens == 7


def test_the_hourly_window_frees_when_enough_old_rows_left() -> None:
    shortfall = Shortfall(Window.HOURLY_CALLS, used=5, limit=3)
    assert hourly_rows_to_leave(shortfall) == 3
    leaving = NOW - timedelta(minutes=20)
    assert frees_at(shortfall, Bounds.at(NOW), prompt_tokens=1, price=PRICE, leaving_reserved_at=leaving) == (
        NOW + timedelta(minutes=40)
    )


def test_daily_windows_free_at_midnight_unless_time_cannot_help() -> None:
    bounds = Bounds.at(NOW)
    midnight = datetime(2031, 3, 13, tzinfo=UTC)
    assert frees_at(Shortfall(Window.DAILY_CALLS, 3, 3), bounds, prompt_tokens=1, price=PRICE) == midnight
    assert frees_at(Shortfall(Window.DAILY_CALLS, 0, 0), bounds, prompt_tokens=1, price=PRICE) is None
    assert frees_at(Shortfall(Window.DAILY_TOKENS, 9, 10), bounds, prompt_tokens=5, price=PRICE) == midnight
    assert frees_at(Shortfall(Window.DAILY_TOKENS, 0, 10), bounds, prompt_tokens=10, price=PRICE) is None
    assert frees_at(Shortfall(Window.DAILY_COST, 0, 10), bounds, prompt_tokens=100, price=PRICE) is None


def test_retry_after_waits_for_the_last_window() -> None:
    assert retry_after([NOW + timedelta(minutes=5), NOW + timedelta(hours=2)], NOW) == timedelta(hours=2)
    assert retry_after([NOW + timedelta(minutes=5), None], NOW) is None
    assert retry_after([NOW - timedelta(seconds=1)], NOW) == timedelta(0)


def test_report_gives_every_window() -> None:
    rows = report(Limits(10, 4, 0, 500), Usage(3, 2, 1234, 600), Bounds.at(NOW), oldest_in_hour=NOW)
    by_window = {r.window: r for r in rows}
    assert (by_window[Window.DAILY_CALLS].used, by_window[Window.DAILY_CALLS].remaining) == (3, 7)
    assert by_window[Window.HOURLY_CALLS].resets_at == NOW + timedelta(hours=1)
    assert by_window[Window.DAILY_TOKENS].unlimited
    assert by_window[Window.DAILY_COST].remaining == 0  # over the limit: never negative


def test_limits_problems_name_the_field() -> None:
    assert Limits(5, 5).problems() == []
    assert Limits(-1, 0).problems() == [("daily_calls", "must not be negative")]
    assert Limits(5, 6).problems() == [("hourly_calls", "must not exceed daily_calls")]
