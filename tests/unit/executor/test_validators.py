"""The validators as pure functions: each reason code, window edges on an exact clock, and that a
rejection lists every failure (no database, no network)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.executor import validators as v
from services.executor.model import MarketInfo, Proposal, Side
from services.executor.policies import default_policy
from shared.policy import Policy

NOW = datetime(2032, 1, 15, 12, 0, tzinfo=UTC)
BTC = MarketInfo("BTC-EUR", "trading", Decimal(5), Decimal("0.00006"), Decimal(1000000000), 2, 8)


def policy(**changes: Any) -> Policy:
    base = replace(
        default_policy("alice"),
        allowed_markets=("BTC-EUR",),
        min_order_eur=Decimal(5),
        max_order_eur=Decimal(100),
        min_confidence=50,
        cooldown_seconds=60,
        anti_flip_seconds=3600,
        daily_trade_cap=10,
        hourly_trade_cap=3,
        daily_notional_cap_eur=Decimal(500),
        price_guard_pct=Decimal(2),
    )
    return replace(base, **changes)


def proposal(**changes: Any) -> Proposal:
    base = Proposal(
        proposal_id="p",
        user_id="alice",
        market="BTC-EUR",
        side=Side.BUY,
        amount_quote=Decimal("10.00"),
        confidence=75,
        status="open",
        expires_at=NOW + timedelta(minutes=5),
        snapshot_price=Decimal(85000),
    )
    return replace(base, **changes)


def facts(**changes: Any) -> v.Facts:
    base = v.Facts(
        proposal=proposal(),
        policy=policy(),
        now=NOW,
        market=BTC,
        price_now=Decimal(85000),
        free_balance=Decimal(1000),
        in_flight_eur=Decimal(0),
        last_on_market_at=None,
        last_opposite_at=None,
        trades_today=0,
        trades_last_hour=0,
        notional_today_eur=Decimal(0),
        account_notional_today_eur=Decimal(0),
        account_daily_notional_cap_eur=Decimal(10000),
    )
    return replace(base, **changes)


def failed(f: v.Facts) -> list[str]:
    return [c.reason for c in v.failures(v.run_validators(f))]


def test_an_ordinary_proposal_passes_every_validator() -> None:
    checks = v.run_validators(facts())
    assert [c.name for c in checks] == [
        "allowlist",
        "market_status",
        "order_size",
        "confidence",
        "cooldown",
        "anti_flip",
        "daily_cap",
        "hourly_cap",
        "daily_notional",
        "account_notional",
        "price_guard",
        "balance",
        "position",
    ]
    assert all(c.passed and c.reason == "" for c in checks)
    assert set(checks[0].record()) == {"name", "passed", "observed", "limit", "reason", "overridden"}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"policy": policy(allowed_markets=())}, v.ALLOWLIST_EMPTY_DENY_BY_DEFAULT),
        ({"policy": policy(allowed_markets=("ETH-EUR",))}, v.MARKET_NOT_ALLOWLISTED),
        ({"market": None}, v.MARKET_NOT_TRADING),
        ({"market": replace(BTC, status="halted")}, v.MARKET_NOT_TRADING),
        ({"proposal": proposal(amount_quote=Decimal("4.99"))}, v.ORDER_TOO_SMALL),
        ({"proposal": proposal(amount_quote=Decimal("100.01"))}, v.ORDER_TOO_LARGE),
        ({"price_now": Decimal(200000), "proposal": proposal(snapshot_price=Decimal(200000))}, v.ORDER_TOO_SMALL),
        ({"proposal": proposal(confidence=60)}, v.CONFIDENCE_NOT_ALLOWED),
        ({"proposal": proposal(confidence=25)}, v.CONFIDENCE_BELOW_MINIMUM),
        ({"last_on_market_at": NOW - timedelta(seconds=59)}, v.COOLDOWN_ACTIVE),
        (
            {"last_on_market_at": NOW - timedelta(minutes=5), "last_opposite_at": NOW - timedelta(minutes=5)},
            v.ANTI_FLIP_ACTIVE,
        ),
        ({"trades_today": 10}, v.DAILY_CAP_REACHED),
        ({"trades_last_hour": 3}, v.HOURLY_CAP_REACHED),
        ({"notional_today_eur": Decimal("490.01")}, v.DAILY_NOTIONAL_CAP_REACHED),
        ({"account_notional_today_eur": Decimal("9990.01")}, v.ACCOUNT_NOTIONAL_CAP_REACHED),
        ({"price_now": Decimal("86700.01")}, v.PRICE_MOVED),
        ({"proposal": proposal(snapshot_price=None)}, v.PRICE_MOVED),
        ({"free_balance": Decimal("9.99")}, v.INSUFFICIENT_BALANCE),
        ({"free_balance": Decimal(15), "in_flight_eur": Decimal("5.01")}, v.INSUFFICIENT_BALANCE),
    ],
)
def test_each_reason_code(changes: dict[str, Any], reason: str) -> None:
    assert failed(facts(**changes)) == [reason]


def test_an_unlisted_market_has_no_price_and_is_refused() -> None:
    assert failed(facts(market=None, price_now=None)) == [v.MARKET_NOT_TRADING, v.PRICE_MOVED]
    sell = proposal(side=Side.SELL)
    assert v.INSUFFICIENT_BALANCE in failed(facts(proposal=sell, market=None, price_now=None))


def test_window_edges_are_exact() -> None:
    assert failed(facts(last_on_market_at=NOW - timedelta(seconds=60))) == []
    assert failed(facts(price_now=Decimal(86700))) == []  # exactly 2 %
    assert failed(facts(notional_today_eur=Decimal(490))) == []  # exactly the cap
    assert failed(facts(trades_today=9, trades_last_hour=2)) == []


def test_a_sell_needs_the_base_asset_net_of_sells_in_flight() -> None:
    sell = proposal(side=Side.SELL)
    enough = Decimal("0.0002")  # 17 EUR at 85000
    mine = {"position_base": enough}
    assert failed(facts(proposal=sell, free_balance=enough, **mine)) == []
    assert failed(facts(proposal=sell, free_balance=enough, in_flight_eur=Decimal(8), **mine)) == [
        v.INSUFFICIENT_BALANCE
    ]


def test_a_sell_is_sized_in_base_rounded_down_and_needs_the_users_own_position() -> None:
    sell = proposal(side=Side.SELL)  # 10 EUR at 85000 = 0.000117647... BTC
    f = facts(proposal=sell, free_balance=Decimal(1), position_base=Decimal("0.00011764"))
    assert f.sell_base == Decimal("0.00011764")  # 8 quantity decimals, rounded down
    assert failed(f) == []
    # the account has plenty, the user does not: refused
    assert failed(replace(f, position_base=Decimal("0.00011763"))) == [v.INSUFFICIENT_POSITION]
    assert failed(replace(f, position_base=Decimal(0))) == [v.INSUFFICIENT_POSITION]
    # net of the user's own SELLs in flight
    assert failed(replace(f, position_base=Decimal("0.0002"), sells_in_flight_base=Decimal("0.0001"))) == [
        v.INSUFFICIENT_POSITION
    ]
    record = next(c for c in v.run_validators(replace(f, position_base=Decimal(0))) if c.name == "position")
    assert "0.00011764 BTC" in record.observed and "0 held" in record.limit
    # a BUY is never refused for the position
    assert failed(facts(position_base=Decimal(0))) == []


def test_overrides_skip_only_their_own_check() -> None:
    recent = NOW - timedelta(seconds=10)
    f = facts(last_on_market_at=recent, last_opposite_at=recent, override_anti_flip=True)
    assert failed(f) == [v.COOLDOWN_ACTIVE]
    checks = {c.name: c for c in v.run_validators(replace(f, override_cooldown=True))}
    assert checks["cooldown"].passed and checks["cooldown"].overridden
    assert checks["anti_flip"].passed and checks["anti_flip"].overridden
    assert not checks["daily_cap"].overridden


def overridden(f: v.Facts) -> dict[str, bool]:
    return {c.name: c.overridden for c in v.run_validators(f) if c.name in ("cooldown", "anti_flip")}


def test_an_override_is_recorded_only_when_it_skipped_a_failing_check() -> None:
    both = {"override_cooldown": True, "override_anti_flip": True}
    # no trade in either window: nothing was skipped
    assert overridden(facts(**both)) == {"cooldown": False, "anti_flip": False}
    # trades older than both windows (cooldown 60 s, anti-flip 3600 s): nothing was skipped
    old = NOW - timedelta(hours=2)
    assert overridden(facts(last_on_market_at=old, last_opposite_at=old, **both)) == {
        "cooldown": False,
        "anti_flip": False,
    }
    # a same-side trade 5 minutes ago: past the cooldown, no opposite trade → nothing skipped
    assert overridden(facts(last_on_market_at=NOW - timedelta(minutes=5), **both)) == {
        "cooldown": False,
        "anti_flip": False,
    }
    # an opposite trade 5 minutes ago: past the cooldown, inside the anti-flip window
    five = NOW - timedelta(minutes=5)
    assert overridden(facts(last_on_market_at=five, last_opposite_at=five, **both)) == {
        "cooldown": False,
        "anti_flip": True,
    }
    # a window of 0 s is never active: an override of it skips nothing
    zero = policy(cooldown_seconds=0, anti_flip_seconds=0)
    assert overridden(facts(policy=zero, last_on_market_at=NOW, last_opposite_at=NOW, **both)) == {
        "cooldown": False,
        "anti_flip": False,
    }
    assert failed(facts(policy=zero, last_on_market_at=NOW, last_opposite_at=NOW)) == []


def test_every_failure_is_reported_not_only_the_first() -> None:
    f = facts(
        policy=policy(allowed_markets=("ETH-EUR",)),
        proposal=proposal(confidence=25, amount_quote=Decimal(1)),
        trades_last_hour=3,
        free_balance=Decimal(0),
    )
    assert failed(f) == [
        v.MARKET_NOT_ALLOWLISTED,
        v.ORDER_TOO_SMALL,
        v.CONFIDENCE_BELOW_MINIMUM,
        v.HOURLY_CAP_REACHED,
        v.INSUFFICIENT_BALANCE,
    ]


def test_amounts_are_rounded_down_to_the_market_precision() -> None:
    coarse = replace(BTC, notional_decimals=0)
    f = facts(market=coarse, proposal=proposal(amount_quote=Decimal("10.99")))
    assert f.amount == Decimal(10)
    assert "rounded down" in next(c for c in v.run_validators(f) if c.name == "order_size").observed


def test_freshness_and_kill_switch() -> None:
    assert v.freshness(proposal(), NOW).passed
    assert v.freshness(proposal(expires_at=NOW), NOW).reason == v.PROPOSAL_EXPIRED
    assert v.freshness(proposal(status="expired"), NOW).reason == v.PROPOSAL_EXPIRED
    assert v.kill_switch(True, True).passed
    assert v.kill_switch(False, True).reason == v.TRADING_DISABLED
    assert v.kill_switch(True, False).reason == v.TRADING_DISABLED


def test_same_version_is_every_field_but_the_status_and_the_read_time() -> None:
    first = proposal(snapshot_json='{"price": "85000"}', created_at=NOW, read_at=NOW)
    assert v.same_version(first, replace(first, read_at=NOW + timedelta(seconds=1))).passed
    assert v.same_version(first, replace(first, status="expired")).passed  # freshness judges that
    for change in (
        {"market": "ETH-EUR"},
        {"side": Side.SELL},
        {"amount_quote": Decimal("100.00")},
        {"confidence": 100},
        {"expires_at": NOW + timedelta(hours=1)},
        {"created_at": NOW - timedelta(seconds=1)},
        {"snapshot_json": '{"price": "1"}'},
    ):
        assert v.same_version(first, replace(first, **change)).reason == v.PROPOSAL_CHANGED, change
