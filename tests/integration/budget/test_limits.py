"""Limits: configured defaults, per-user limits, and the max_tokens a reservation grants
(min of the request, the per-call cap and what the token and cost limits leave)."""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
from oracle.budget.v1 import budget_service_pb2 as pb

from tests.harness import Postgres, new_user_id, scrape
from tests.integration.budget.servers import Budget, in_process_budget


def test_users_without_limits_get_the_configured_defaults(postgres: Postgres) -> None:
    with in_process_budget(postgres, default_daily_calls="3", default_hourly_calls="2") as budget:
        user = new_user_id("defaults")
        reply = budget.stub.GetUsage(pb.GetUsageRequest(user_id=user))
        assert (reply.limits.daily_calls, reply.limits.hourly_calls) == (3, 2)
        budget.reserve(user)
        budget.reserve(user)
        assert [v.subject for v in budget.refused(user).quota_violations] == [f"user:{user}/hourly_calls"]
        # Per-user limits replace the defaults.
        budget.set_limits(user, daily=10, hourly=10)
        budget.reserve(user)


def test_max_tokens_is_capped_by_the_request_the_cap_and_the_token_limit(postgres: Postgres) -> None:
    with in_process_budget(postgres, max_tokens_per_call="500") as budget:
        user = new_user_id("tokens")
        budget.set_limits(user, daily=10, hourly=10, tokens=3000)
        assert budget.reserve(user, prompt=1000, max_tokens=300).max_tokens == 300  # as requested
        capped = budget.reserve(user, prompt=500, max_tokens=800)  # the per-call cap
        assert (capped.max_tokens, capped.estimated_tokens) == (500, 1000)
        # Used 1300 + 1000 = 2300 of 3000; a 600-token prompt leaves room for 100.
        assert budget.reserve(user, prompt=600, max_tokens=800).max_tokens == 100
        refused = budget.refused(user, prompt=1, max_tokens=1)
        assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert [v.subject for v in refused.quota_violations] == [f"user:{user}/daily_tokens"]
        tokens = budget.usage(user)[pb.WINDOW_DAILY_TOKENS]
        assert (tokens.used, tokens.remaining) == (3000, 0)
        # Tokens free up at the next UTC midnight.
        now = budget.clock.now()
        midnight = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) + timedelta(days=1)
        assert refused.retry_after == midnight - now


def test_the_cost_limit_caps_max_tokens_and_refuses_when_spent(budget: Budget) -> None:
    user = new_user_id("cost")
    budget.set_limits(user, daily=10, hourly=10, cost=1000)
    # gpt-4o-mini: 0.15 / 0.60 USD per million tokens = micros per token.
    # 1000 prompt tokens cost 150; (1000 - 150) / 0.60 = 1416 completion tokens fit.
    grant = budget.reserve(user, prompt=1000, max_tokens=4000)
    assert grant.max_tokens == 1416
    assert grant.estimated_cost_micros == 1000  # 150 + 849.6, rounded up
    refused = budget.refused(user, prompt=1, max_tokens=1)
    assert [v.subject for v in refused.quota_violations] == [f"user:{user}/daily_cost_micros"]


def test_unknown_models_are_priced_at_the_conservative_default(budget: Budget) -> None:
    user = new_user_id("price")
    known = budget.reserve(user, prompt=1000, max_tokens=1000, model="gpt-4o-mini")
    unknown = budget.reserve(user, prompt=1000, max_tokens=1000, model="some-new-model")
    assert known.estimated_cost_micros == 150 + 600
    assert unknown.estimated_cost_micros == 10_000 + 30_000


def test_set_limits_stores_and_reports_them(budget: Budget) -> None:
    user = new_user_id("limits")
    reply = budget.stub.SetLimits(
        pb.SetLimitsRequest(
            user_id=user, limits=pb.Limits(daily_calls=7, hourly_calls=7, daily_tokens=0, daily_cost_micros=5)
        )
    )
    assert reply.limits == pb.Limits(daily_calls=7, hourly_calls=7, daily_tokens=0, daily_cost_micros=5)
    usage = budget.stub.GetUsage(pb.GetUsageRequest(user_id=user))
    assert usage.limits == reply.limits
    windows = {w.window: w for w in usage.windows}
    assert set(windows) == {pb.WINDOW_DAILY_CALLS, pb.WINDOW_HOURLY_CALLS, pb.WINDOW_DAILY_TOKENS, pb.WINDOW_DAILY_COST}
    assert windows[pb.WINDOW_DAILY_TOKENS].unlimited
    assert not windows[pb.WINDOW_DAILY_COST].unlimited
    assert windows[pb.WINDOW_DAILY_CALLS].remaining == 7
    assert not windows[pb.WINDOW_HOURLY_CALLS].HasField("resets_at")  # nothing in the hour yet


def test_a_zero_call_limit_refuses_without_a_retry_time(budget: Budget) -> None:
    user = new_user_id("zero")
    budget.set_limits(user, daily=0, hourly=0)
    refused = budget.refused(user)
    assert {v.subject for v in refused.quota_violations} == {f"user:{user}/daily_calls", f"user:{user}/hourly_calls"}
    assert refused.retry_after is None  # time alone never makes room


def test_reservations_are_counted_granted_or_denied_by_the_windows_that_refused(
    postgres: Postgres, metrics_port: int
) -> None:
    name = "oracle_budget_reservations_total"
    with in_process_budget(postgres, default_daily_calls="3", default_hourly_calls="2") as budget:
        user = new_user_id("counted")
        before = scrape(metrics_port)
        budget.reserve(user)
        budget.reserve(user)
        refusals = [budget.refused(user) for _ in range(3)]
        after = scrape(metrics_port)
    assert all(r.code is grpc.StatusCode.RESOURCE_EXHAUSTED for r in refusals)
    granted = after.value(name, outcome="granted") - before.value(name, outcome="granted")
    denied = after.value(name, outcome="denied", reason="hourly_calls") - before.value(
        name, outcome="denied", reason="hourly_calls"
    )
    assert (granted, denied) == (2, len(refusals))
    ratio = "oracle_budget_window_use_ratio_count"
    assert after.value(ratio, window="hourly_calls") - before.value(ratio, window="hourly_calls") == 5
