"""The loss breaker's figures as pure functions: today's loss counts realized losses and open
positions' unrealized losses (gains elsewhere do not offset them), the cumulative P&L counts both,
and a held market without a price counts its whole cost as lost (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.executor.breaker import Marks, figures
from services.executor.ledger import Position
from shared.exchange.errors import ExchangeUnavailableError, RequestRejectedError

BTC = Position("BTC-EUR", quantity=Decimal(1), cost_eur=Decimal(100), realized_pnl_eur=Decimal(-3))
ETH = Position("ETH-EUR", quantity=Decimal(2), cost_eur=Decimal(50), realized_pnl_eur=Decimal(10))


def test_daily_loss_counts_losses_and_cumulative_pnl_counts_everything() -> None:
    f = figures([BTC, ETH], Decimal(-4), {"BTC-EUR": Decimal(90), "ETH-EUR": Decimal(40)})
    assert f.unrealized_eur == Decimal(20)  # -10 + 30
    assert f.unrealized_loss_eur == Decimal(-10)  # ETH's gain does not offset BTC's loss
    assert f.daily_loss_eur == Decimal(14)  # 4 realized today + 10 unrealized
    assert f.cumulative_pnl_eur == Decimal(27)  # 7 realized in total + 20 unrealized


def test_no_loss_is_zero_and_a_missing_price_is_a_whole_loss() -> None:
    assert figures([ETH], Decimal(5), {"ETH-EUR": Decimal(40)}).daily_loss_eur == 0
    assert figures([BTC], Decimal(0), {}).daily_loss_eur == Decimal(100)


def test_marks_leave_out_an_unlisted_market_but_never_hide_an_unreachable_exchange() -> None:
    calls: list[str] = []

    def price(market: str) -> Decimal:
        calls.append(market)
        if market == "OLD-EUR":
            raise RequestRejectedError("no such market", code=205)
        if market == "DOWN-EUR":
            raise ExchangeUnavailableError("timeout")
        return Decimal(7)

    marks = Marks(price, ttl_seconds=60)
    assert marks.prices(["BTC-EUR", "OLD-EUR"]) == {"BTC-EUR": Decimal(7)}
    assert marks.prices(["BTC-EUR"]) == {"BTC-EUR": Decimal(7)}
    assert calls.count("BTC-EUR") == 1  # cached
    with pytest.raises(ExchangeUnavailableError):  # an unreachable exchange is never priced as nothing
        marks.prices(["DOWN-EUR"])
