"""The loss breaker (docs/design.md#trading-states): each limit tripped through real fills at the
simulator with prices moved at the simulator → BUYs refused with a named reason, the user (or the
account) moved to REDUCING and audited with the figures, a reducing SELL still accepted, and only
an operator's SetTradingState brings it back to ACTIVE."""

from __future__ import annotations

from decimal import Decimal

import grpc
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    in_process_executor,
    payload,
    seed_proposal,
    user,
    violation_types,
)

MARKET = "BTC-EUR"


def move_price(exchange: Exchange, factor: str) -> Decimal:
    price = (exchange.price(MARKET) * Decimal(factor)).quantize(Decimal(1))
    exchange.admin.set_price(MARKET, price)
    return price


def propose(postgres: Postgres, exchange: Exchange, uid: str, side: str, amount: str, market: str = MARKET) -> str:
    return seed_proposal(postgres, uid, side=side, amount=amount, market=market, price=exchange.price(market))


def state_of(ex: Executor, uid: str) -> pb.UserPositions:
    reply: pb.GetPositionsResponse = ex.operator.GetPositions(pb.GetPositionsRequest(user_id=uid, check_books=True))
    mine: pb.UserPositions = reply.users[0]
    assert len(reply.users) == 1
    assert mine.books_check.consistent, mine.books_check.differences
    return mine


def breaker_events(ex: Executor, uid: str) -> list[pb.AuditEvent]:
    return [e for e in ex.audit(uid) if e.kind.startswith("trading_state.")]


def assert_reducing_then_resumed(
    ex: Executor, postgres: Postgres, exchange: Exchange, uid: str, reason: str, figure: str
) -> None:
    """After a refusal for ``reason``: REDUCING, audited with the figures, BUYs refused, a
    reducing SELL accepted, and ACTIVE again only through SetTradingState."""
    mine = state_of(ex, uid)
    assert mine.trading_state == pb.TRADING_STATE_REDUCING
    assert reason in mine.state_reason
    [event] = breaker_events(ex, uid)
    assert event.kind == "trading_state.reducing"
    data = payload(event)
    assert data["scope"] == "user" and data["reasons"] == [reason]
    assert Decimal(data["user"][figure]) > 0

    again = ex.refused(uid, propose(postgres, exchange, uid, "buy", "10.00", market="ETH-EUR"))
    assert again.code is grpc.StatusCode.FAILED_PRECONDITION
    assert violation_types(again) == ["USER_REDUCING"]

    before = exchange.post_count()
    sold = ex.execute(uid, propose(postgres, exchange, uid, "sell", "20.00"))
    assert sold.status == pb.EXECUTION_STATUS_FILLED
    assert exchange.post_count() - before == 1

    reply = ex.operator.SetTradingState(
        pb.SetTradingStateRequest(
            scope=pb.KILL_SWITCH_SCOPE_USER, user_id=uid, state=pb.TRADING_STATE_ACTIVE, reason="reviewed"
        )
    )
    assert (reply.previous, reply.state) == (pb.TRADING_STATE_REDUCING, pb.TRADING_STATE_ACTIVE)
    assert state_of(ex, uid).trading_state == pb.TRADING_STATE_ACTIVE
    assert [e.kind for e in breaker_events(ex, uid)] == ["trading_state.reducing", "trading_state.active"]


def test_daily_loss_limit_moves_the_user_to_reducing(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, marks_cache_seconds="0") as ex:
        ex.set_policy(uid, price_guard_pct="50", max_daily_loss_eur="5")
        bought = ex.execute(uid, propose(postgres, exchange, uid, "buy", "100.00"))
        assert bought.status == pb.EXECUTION_STATUS_FILLED
        assert ex.execute(uid, propose(postgres, exchange, uid, "buy", "10.00")).status == pb.EXECUTION_STATUS_FILLED

        move_price(exchange, "0.9")  # about 11 EUR of unrealized loss on 110 EUR
        before = exchange.post_count()
        report = ex.refused(uid, propose(postgres, exchange, uid, "buy", "10.00"))

        assert report.code is grpc.StatusCode.FAILED_PRECONDITION
        assert violation_types(report) == ["DAILY_LOSS_LIMIT_REACHED"]
        assert exchange.post_count() == before
        assert_reducing_then_resumed(ex, postgres, exchange, uid, "DAILY_LOSS_LIMIT_REACHED", "daily_loss_eur")


def test_realized_losses_count_toward_the_daily_loss(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, marks_cache_seconds="0") as ex:
        ex.set_policy(uid, price_guard_pct="50", max_daily_loss_eur="4")
        ex.execute(uid, propose(postgres, exchange, uid, "buy", "60.00"))
        # coins beyond the user's on the account: the account-wide balance check (which counts
        # other tests' SELLs still in flight in this shared database) never decides here
        exchange.admin.set_balance("BTC", "1")
        move_price(exchange, "0.9")
        ex.execute(uid, propose(postgres, exchange, uid, "sell", "50.00"))  # realizes about -5.6 EUR
        mine = state_of(ex, uid)
        assert Decimal(mine.realized_today_eur) < Decimal(-4)

        report = ex.refused(uid, propose(postgres, exchange, uid, "buy", "10.00", market="ETH-EUR"))
        assert violation_types(report) == ["DAILY_LOSS_LIMIT_REACHED"]
        assert state_of(ex, uid).trading_state == pb.TRADING_STATE_REDUCING


def test_drawdown_from_the_peak_moves_the_user_to_reducing(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, marks_cache_seconds="0") as ex:
        ex.set_policy(uid, price_guard_pct="50", max_drawdown_eur="6")
        ex.execute(uid, propose(postgres, exchange, uid, "buy", "100.00"))
        move_price(exchange, "1.1")  # about +9.5 EUR: the peak
        # evaluated (and passed) at the peak
        ex.execute(uid, propose(postgres, exchange, uid, "buy", "10.00"))
        peak = state_of(ex, uid)
        assert Decimal(peak.unrealized_pnl_eur) > Decimal(5)

        move_price(exchange, "0.93")  # about 7 % down from the peak: over 6 EUR of drawdown
        report = ex.refused(uid, propose(postgres, exchange, uid, "buy", "10.00", market="ETH-EUR"))

        assert violation_types(report) == ["MAX_DRAWDOWN_REACHED"]
        assert_reducing_then_resumed(ex, postgres, exchange, uid, "MAX_DRAWDOWN_REACHED", "cumulative_pnl_eur")


def test_account_daily_loss_limit_moves_the_account_to_reducing(private_postgres: Postgres, exchange: Exchange) -> None:
    # A database of its own: the account's figures are every user's.
    postgres = private_postgres
    first, second = user(), user()
    with in_process_executor(postgres, exchange.url, marks_cache_seconds="0") as ex:
        for uid in (first, second):
            ex.set_policy(uid, price_guard_pct="50")  # no per-user loss limit
            ex.execute(uid, propose(postgres, exchange, uid, "buy", "60.00"))
        ex.operator.UpdateAccountSettings(
            pb.UpdateAccountSettingsRequest(
                settings=pb.AccountSettings(daily_notional_cap_eur="100000", daily_loss_limit_eur="8"),
                expected_version=ex.account().version,
            )
        )
        move_price(exchange, "0.9")  # about 6 EUR down each: 12 EUR for the account

        report = ex.refused(first, propose(postgres, exchange, first, "buy", "10.00"))

        assert violation_types(report) == ["ACCOUNT_DAILY_LOSS_LIMIT_REACHED"]
        account = ex.operator.GetPositions(pb.GetPositionsRequest()).account
        assert account.trading_state == pb.TRADING_STATE_REDUCING
        assert Decimal(account.daily_loss_eur) >= Decimal(8)
        [event] = [e for e in ex.audit("_system") if e.kind == "trading_state.reducing"]
        assert payload(event)["scope"] == "account"
        assert Decimal(payload(event)["account"]["daily_loss_eur"]) >= Decimal(8)
        # every user's BUYs stop; a reducing SELL passes
        other = ex.refused(second, propose(postgres, exchange, second, "buy", "10.00"))
        assert violation_types(other) == ["ACCOUNT_REDUCING"]
        assert ex.execute(second, propose(postgres, exchange, second, "sell", "20.00")).status == (
            pb.EXECUTION_STATUS_FILLED
        )

        ex.operator.SetTradingState(
            pb.SetTradingStateRequest(scope=pb.KILL_SWITCH_SCOPE_GLOBAL, state=pb.TRADING_STATE_ACTIVE, reason="ok")
        )
        assert ex.operator.GetPositions(pb.GetPositionsRequest()).account.trading_state == pb.TRADING_STATE_ACTIVE
        assert [e.kind for e in ex.audit("_system") if e.kind.startswith("trading_state.")] == [
            "trading_state.reducing",
            "trading_state.active",
        ]
