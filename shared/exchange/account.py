"""``AccountReads``: what any key of a Bitvavo account can read — balances, orders and trades.

Written once for both keyed clients: the scanner's view-only ``ReadonlyAccount`` is an
``AccountReads``, and the executor's ``TradeClient`` reads through one. Reads only, each retried on
transient failures (``BitvavoGateway.read``); nothing here places, changes or cancels an order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from shared.exchange.orders import Balance, Order, Trade
from shared.exchange.sdk import BitvavoGateway, RateLimitStatus
from shared.exchange.wire import as_list, check_market, check_symbol, history_query

_Row = TypeVar("_Row")


def _each(parse: Callable[[Any], _Row], what: str) -> Callable[[Any], tuple[_Row, ...]]:
    """A parser of a list answer: ``parse`` applied to every row, in order."""

    def parse_all(payload: Any) -> tuple[_Row, ...]:
        return tuple(parse(row) for row in as_list(payload, what))

    return parse_all


class AccountReads:
    """Balances, orders and trades of the account behind ``gateway``'s key."""

    def __init__(self, gateway: BitvavoGateway) -> None:
        self._gateway = gateway

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        return self._gateway.rate_limit

    def balances(self) -> tuple[Balance, ...]:
        """Every asset with a non-zero balance (weight 5)."""
        return self._gateway.read_as("balance", lambda sdk: sdk.balance({}), _each(Balance.from_json, "balance"))

    def balance(self, symbol: str) -> Balance:
        """One asset's balance; zero when the account holds none (weight 5)."""
        check_symbol(symbol)

        def parse(payload: Any) -> Balance:
            for row in as_list(payload, "balance"):
                balance = Balance.from_json(row)
                if balance.symbol == symbol:
                    return balance
            return Balance(symbol=symbol, available=Decimal(0), in_order=Decimal(0))

        return self._gateway.read_as("balance", lambda sdk: sdk.balance({"symbol": symbol}), parse)

    def open_orders(self, market: str | None = None) -> tuple[Order, ...]:
        """Active orders (weight 1 for one market, 25 for all)."""
        options = {} if market is None else {"market": check_market(market)}
        return self._gateway.read_as(
            "ordersOpen", lambda sdk: sdk.ordersOpen(dict(options)), _each(Order.from_json, "orders")
        )

    def orders(
        self, market: str, *, limit: int | None = None, start: datetime | None = None, end: datetime | None = None
    ) -> tuple[Order, ...]:
        """Order history of one market, newest first (weight 5)."""
        options = history_query(limit, start, end)
        check_market(market)
        return self._gateway.read_as(
            "orders", lambda sdk: sdk.getOrders(market, dict(options)), _each(Order.from_json, "orders")
        )

    def trades(
        self, market: str, *, limit: int | None = None, start: datetime | None = None, end: datetime | None = None
    ) -> tuple[Trade, ...]:
        """The account's own fills in one market, newest first (weight 5)."""
        options = history_query(limit, start, end)
        check_market(market)
        return self._gateway.read_as(
            "trades", lambda sdk: sdk.trades(market, dict(options)), _each(Trade.from_json, "trades")
        )
