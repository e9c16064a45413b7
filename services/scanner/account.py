"""``ReadonlyAccount``: the scanner's view of the Bitvavo account, through a view-only key.

It reads balances, the account's orders and its trades, and nothing else: it has no way to place
or change an order. On construction it proves the key cannot trade (a cancel of a random order id
must be refused with 310) and refuses to exist otherwise, so a trade key put into the scanner's
environment by mistake stops the scanner at startup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.exchange.errors import TradeCapableKeyError
from shared.exchange.orders import Balance, Order, Trade
from shared.exchange.permissions import TradePermission, probe_trade_permission
from shared.exchange.sdk import ApiCredentials, BitvavoGateway, ExchangeSettings, RateLimitStatus
from shared.exchange.wire import as_list, check_market, check_symbol, history_query

logger = logging.getLogger(__name__)

PROBE_MARKET = "BTC-EUR"
PROBE_OPERATOR_ID = 0


class ReadonlyAccount:
    """Balances, orders and trades of the account behind a view-only key.

    Raises ``TradeCapableKeyError`` at construction when the key can trade, and whatever the probe
    raised (``AuthenticationError``, ``ExchangeUnavailableError``, …) when it cannot tell.
    """

    def __init__(
        self,
        credentials: ApiCredentials,
        settings: ExchangeSettings | None = None,
        *,
        probe_market: str = PROBE_MARKET,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._gateway = BitvavoGateway(settings or ExchangeSettings(), credentials, sleep=sleep)
        self._probe_market = check_market(probe_market)
        self.verify_cannot_trade()

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        return self._gateway.rate_limit

    def verify_cannot_trade(self) -> None:
        """Prove the key lacks the trade permission; raise ``TradeCapableKeyError`` if it has it."""
        permission = probe_trade_permission(self._gateway, market=self._probe_market, operator_id=PROBE_OPERATOR_ID)
        if permission is not TradePermission.CANNOT_TRADE:
            logger.error("the scanner's Bitvavo key can trade; refusing to start")
            raise TradeCapableKeyError("this key can trade; the scanner only accepts a view-only key")
        logger.info("the scanner's Bitvavo key is view-only")

    def balances(self) -> tuple[Balance, ...]:
        """Every asset with a non-zero balance (weight 5)."""
        return self._gateway.read_as(
            "balance", lambda sdk: sdk.balance({}), lambda p: tuple(Balance.from_json(b) for b in as_list(p, "balance"))
        )

    def balance(self, symbol: str) -> Balance:
        """One asset's balance; zero when the account holds none (weight 5)."""
        check_symbol(symbol)

        def parse(payload: Any) -> Balance:
            rows = [Balance.from_json(b) for b in as_list(payload, "balance")]
            for row in rows:
                if row.symbol == symbol:
                    return row
            return Balance.from_json({"symbol": symbol, "available": "0", "inOrder": "0"})

        return self._gateway.read_as("balance", lambda sdk: sdk.balance({"symbol": symbol}), parse)

    def open_orders(self, market: str | None = None) -> tuple[Order, ...]:
        """Active orders (weight 1 for one market, 25 for all)."""
        options = {} if market is None else {"market": check_market(market)}
        return self._gateway.read_as(
            "ordersOpen",
            lambda sdk: sdk.ordersOpen(dict(options)),
            lambda p: tuple(Order.from_json(o) for o in as_list(p, "orders")),
        )

    def orders(
        self,
        market: str,
        *,
        limit: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[Order, ...]:
        """Order history of one market, newest first (weight 5)."""
        options = history_query(limit, start, end)
        check_market(market)
        return self._gateway.read_as(
            "orders",
            lambda sdk: sdk.getOrders(market, dict(options)),
            lambda p: tuple(Order.from_json(o) for o in as_list(p, "orders")),
        )

    def trades(
        self,
        market: str,
        *,
        limit: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[Trade, ...]:
        """The account's own fills in one market, newest first (weight 5)."""
        options = history_query(limit, start, end)
        check_market(market)
        return self._gateway.read_as(
            "trades",
            lambda sdk: sdk.trades(market, dict(options)),
            lambda p: tuple(Trade.from_json(t) for t in as_list(p, "trades")),
        )
