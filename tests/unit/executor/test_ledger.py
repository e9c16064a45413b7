"""The books' one rule (ledger.Position.apply) as a pure function: average cost with fees,
realized P&L of a sell, a fee charged in the base asset, a sell beyond the user's books, and a
replay that sorts fills into fill order (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.executor.ledger import BookFill, Position, replay, unrealized
from services.executor.model import Side

T0 = datetime(2033, 1, 1, tzinfo=UTC)


def fill(n: int, side: Side, amount: str, price: str, fee: str = "0", currency: str = "EUR") -> BookFill:
    return BookFill(
        "e", f"f{n}", side, Decimal(amount), Decimal(price), Decimal(fee), currency, T0 + timedelta(seconds=n)
    )


def test_buys_average_their_cost_with_fees_and_a_sell_realizes_against_it() -> None:
    p, _ = Position("BTC-EUR").apply(fill(1, Side.BUY, "1", "100", "1"))  # cost 101
    p, _ = p.apply(fill(2, Side.BUY, "1", "200", "1"))  # cost 101 + 201 = 302
    assert (p.quantity, p.cost_eur, p.average_cost_eur) == (Decimal(2), Decimal(302), Decimal(151))
    p, entry = p.apply(fill(3, Side.SELL, "0.5", "300", "1.5"))  # proceeds 150 - 1.5; cost out 75.5
    assert entry.realized_pnl_eur == Decimal("73")
    assert (p.quantity, p.cost_eur, p.realized_pnl_eur) == (Decimal("1.5"), Decimal("226.5"), Decimal(73))
    assert p.average_cost_eur == Decimal(151)  # a sell leaves the average cost as it was
    assert unrealized(p, Decimal(100)) == Decimal("-76.5")
    assert unrealized(p, None) is None


def test_selling_everything_leaves_no_cost_behind() -> None:
    p, _ = Position("BTC-EUR").apply(fill(1, Side.BUY, "3", "10", "0.3"))
    p, entry = p.apply(fill(2, Side.SELL, "3", "9", "0.27"))
    assert (p.quantity, p.cost_eur) == (Decimal(0), Decimal(0))
    assert entry.realized_pnl_eur == Decimal("-3.57")  # 27 - 0.27 - 30.3


def test_a_fee_in_the_base_asset_reduces_what_a_buy_receives() -> None:
    p, _ = Position("BTC-EUR").apply(fill(1, Side.BUY, "1", "100", "0.01", currency="BTC"))
    assert (p.quantity, p.cost_eur) == (Decimal("0.99"), Decimal(101))


def test_a_sell_beyond_the_users_books_realizes_only_what_it_held() -> None:
    p, _ = Position("BTC-EUR").apply(fill(1, Side.BUY, "1", "100"))
    p, entry = p.apply(fill(2, Side.SELL, "2", "150"))
    assert p.quantity == 0 and entry.quantity_delta == Decimal(-1)
    assert entry.realized_pnl_eur == Decimal(50)  # half the proceeds are for coins the user never had


def test_replay_applies_fills_in_fill_order_whatever_order_they_come_in() -> None:
    fills = [fill(3, Side.SELL, "1", "120"), fill(1, Side.BUY, "1", "100"), fill(2, Side.BUY, "1", "110")]
    position, entries = replay("BTC-EUR", fills)
    assert [e.fill.fill_id for e in entries] == ["f1", "f2", "f3"]
    assert (position.quantity, position.cost_eur, position.realized_pnl_eur) == (Decimal(1), Decimal(105), Decimal(15))
    assert position.last == fills[0].key
