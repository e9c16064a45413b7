"""Where orders go: the one interface the execution flow and the reconciler use, whatever the mode.

``Venue`` is that interface; ``LiveVenue`` is the real exchange (paper.py holds the paper one).
Both read markets and prices through :class:`Markets` (the keyless ``PublicMarketData``, with the
market list cached briefly). Failures are the typed errors of ``shared.exchange.errors``: for
``place``, a refusal or ``NotSentError`` means the order does not exist, an
``OutcomeUnknownError`` (or anything else) means it may (state_machine.order_absent decides).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

from services.executor.model import Fill, MarketInfo, OrderView, Side, Status
from services.executor.trade_client import TradeClient
from shared.exchange.errors import OrderNotFoundError
from shared.exchange.market import Market
from shared.exchange.orders import Order, OrderStatus, OrderType, Trade
from shared.exchange.public import PublicMarketData

log = logging.getLogger(__name__)


class Venue(Protocol):
    """Markets, prices, balances and orders for one mode."""

    mode: str  # "live" or "paper": the mode of the executions this venue handles

    def verify(self) -> None:
        """At startup: prove the venue can do its job (live: the key can trade); raise if not."""
        ...

    def market_names(self) -> frozenset[str]:
        """Every market the exchange lists (for policy validation)."""
        ...

    def market(self, market: str) -> MarketInfo | None:
        """A market's trading rules; None when the exchange does not list it."""
        ...

    def price(self, market: str) -> Decimal:
        """The market's current public price."""
        ...

    def free_balance(self, symbol: str, market: str) -> Decimal:
        """Free (available) balance of ``symbol`` on the account (``market`` is being traded)."""
        ...

    def place(
        self, *, market: str, side: Side, amount_quote: Decimal, client_order_id: str, amount: Decimal | None = None
    ) -> OrderView:
        """Send ONE market order, sized in the base asset when ``amount`` is given (SELLs),
        else in EUR. Never retried, here or by the caller."""
        ...

    def find(self, *, market: str, client_order_id: str, since: datetime) -> OrderView | None:
        """Look an order up by clientOrderId (the order itself, then the history since
        ``since``); None only when every lookup answered cleanly that there is no such order.
        Raises when a lookup fails."""
        ...


class Markets:
    """Public market data: the market list (cached for ``ttl_seconds``) and current prices."""

    def __init__(self, public: PublicMarketData, ttl_seconds: float) -> None:
        self._public = public
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cached: dict[str, MarketInfo] = {}
        self._fetched = float("-inf")

    def _all(self) -> dict[str, MarketInfo]:
        with self._lock:
            if time.monotonic() - self._fetched <= self._ttl and self._cached:
                return self._cached
        fresh = {m.market: _market_info(m) for m in self._public.markets()}
        with self._lock:
            self._cached, self._fetched = fresh, time.monotonic()
        return fresh

    def names(self) -> frozenset[str]:
        return frozenset(self._all())

    def info(self, market: str) -> MarketInfo | None:
        return self._all().get(market)

    def price(self, market: str) -> Decimal:
        return self._public.ticker_price(market).price


class PublicReads:
    """The part of every venue that public market data answers (live and paper alike)."""

    def __init__(self, markets: Markets) -> None:
        self._markets = markets

    def market_names(self) -> frozenset[str]:
        return self._markets.names()

    def market(self, market: str) -> MarketInfo | None:
        return self._markets.info(market)

    def price(self, market: str) -> Decimal:
        return self._markets.price(market)


class LiveVenue(PublicReads):
    """The real exchange (or the simulator): orders through the trade key's TradeClient."""

    mode = "live"

    def __init__(self, markets: Markets, trade: TradeClient) -> None:
        super().__init__(markets)
        self._trade = trade

    def verify(self) -> None:
        self._trade.verify_can_trade()

    def free_balance(self, symbol: str, market: str) -> Decimal:
        return self._trade.balance(symbol).available

    def place(
        self, *, market: str, side: Side, amount_quote: Decimal, client_order_id: str, amount: Decimal | None = None
    ) -> OrderView:
        if amount is not None:
            order = self._trade.place_order(market, side.value, OrderType.MARKET, client_order_id, amount=amount)
        else:
            order = self._trade.place_order(
                market, side.value, OrderType.MARKET, client_order_id, amount_quote=amount_quote
            )
        return order_view(order)

    def find(self, *, market: str, client_order_id: str, since: datetime) -> OrderView | None:
        try:
            return order_view(self._trade.get_order(market, client_order_id=client_order_id))
        except OrderNotFoundError:
            pass  # not under that id (or no longer): the history says whether it ever existed
        history = self._trade.find_order_history(market, client_order_id, since)
        if history.order is not None:
            return order_view(history.order)
        if history.trades:
            return _view_from_trades(history.trades)
        return None


# ------------------------------------------------------------------ exchange values → ours

_STATUS: dict[OrderStatus, Status] = {
    OrderStatus.NEW: Status.SUBMITTED,
    OrderStatus.AWAITING_TRIGGER: Status.SUBMITTED,
    OrderStatus.PARTIALLY_FILLED: Status.PARTIALLY_FILLED,
    OrderStatus.FILLED: Status.FILLED,
}


def order_view(order: Order) -> OrderView:
    """The execution's view of an exchange order (every final non-filled status is CANCELED)."""
    return OrderView(
        order_id=order.order_id,
        status=_STATUS.get(order.status, Status.CANCELED),
        exchange_status=order.status.value,
        filled_amount=order.filled_amount,
        filled_amount_quote=order.filled_amount_quote,
        fee_paid=order.fee_paid,
        fee_currency=order.fee_currency or "",
        fills=tuple(
            Fill(
                fill_id=f.fill_id,
                amount=f.amount,
                price=f.price,
                fee=f.fee or Decimal(0),
                fee_currency=f.fee_currency or "",
                taker=f.taker,
                filled_at=f.timestamp,
            )
            for f in order.fills
        ),
        raw=_jsonable(asdict(order)),
    )


def _view_from_trades(trades: tuple[Trade, ...]) -> OrderView:
    """Fills found without their order: money moved, the order's final state is not known yet
    (PARTIALLY_FILLED keeps the reconciler looking)."""
    amount = sum((t.amount for t in trades), Decimal(0))
    quote = sum((t.amount * t.price for t in trades), Decimal(0))
    fee = sum((t.fee or Decimal(0) for t in trades), Decimal(0))
    return OrderView(
        order_id=trades[0].order_id,
        status=Status.PARTIALLY_FILLED,
        exchange_status="tradesOnly",
        filled_amount=amount,
        filled_amount_quote=quote,
        fee_paid=fee,
        fee_currency=trades[0].fee_currency or "",
        fills=tuple(
            Fill(t.trade_id, t.amount, t.price, t.fee or Decimal(0), t.fee_currency or "", t.taker, t.timestamp)
            for t in trades
        ),
        raw={"trades": [_jsonable(asdict(t)) for t in trades]},
    )


def _market_info(m: Market) -> MarketInfo:
    return MarketInfo(
        market=m.market,
        status=m.status,
        min_order_quote=m.min_order_in_quote_asset,
        min_order_base=m.min_order_in_base_asset,
        max_order_quote=m.max_order_in_quote_asset or Decimal("1000000000"),
        notional_decimals=2 if m.notional_decimals is None else m.notional_decimals,
        quantity_decimals=8 if m.quantity_decimals is None else m.quantity_decimals,
    )


def _jsonable(value: Any) -> Any:
    """Decimals as strings, times as ISO text, enums as their value: storable as JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value
