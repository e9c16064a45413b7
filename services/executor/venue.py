"""Where orders go: the one interface the execution flow and the reconciler use, whatever the mode.

``Venue`` is that interface; ``LiveVenue`` is the real exchange (paper.py holds the paper one).
Both read markets and prices through :class:`Markets` (the keyless ``PublicMarketData``, with the
market list cached for a while and dropped at once when the exchange refuses an order for rules
that changed: ``shared.exchange.errors.MARKET_RULES_CODES``). Live asks the exchange for a fresh
price every time (the price guard); the paper venue reuses a price for at most a second
(``recent.Recent``). Failures are the typed errors of
``shared.exchange.errors``: for ``place``, a refusal or ``NotSentError`` means the order does not
exist, an ``OutcomeUnknownError`` (or anything else) means it may (state_machine.order_absent
decides).
Every deadline a venue is given or answers is in exchange time (epoch ms): the live venue's is
the trade client's ``ExchangeClock`` (``GET /time`` offset), the paper venue's the local clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

from services.executor.model import Absent, Fill, Found, Lookup, MarketInfo, OrderView, Side, Status, Unreadable
from services.executor.trade_client import TradeClient
from shared.exchange.errors import RequestRejectedError, says_market_rules_changed
from shared.exchange.history import OrderAbsent, Unparseable
from shared.exchange.market import Market
from shared.exchange.orders import Order, OrderStatus, OrderType, Trade
from shared.exchange.public import PublicMarketData
from shared.exchange.sdk import RateLimitStatus
from shared.exchange.weights import WeightTally

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

    def exchange_now_ms(self, *, fresh: bool = False) -> int:
        """Exchange time now (epoch ms); ``fresh``: measured just now (raises if it cannot be)."""
        ...

    def weight_tally(self) -> AbstractContextManager[WeightTally]:
        """Counts the exchange weight this thread spends inside the block."""
        ...

    def place(
        self,
        *,
        market: str,
        side: Side,
        amount_quote: Decimal,
        client_order_id: str,
        sign_by_ms: int,
        amount: Decimal | None = None,
    ) -> OrderView:
        """Send ONE market order, sized in the base asset when ``amount`` is given (SELLs), else in
        EUR, signed no later than ``sign_by_ms`` (exchange time: past it,
        ``SigningDeadlinePassedError`` and nothing sent). Never retried, here or by the caller."""
        ...

    def find(self, *, market: str, client_order_id: str, since_ms: int, max_weight: int | None) -> Lookup:
        """Look an order up by clientOrderId (the order itself, then the history from ``since_ms``,
        exchange time, to now): ``Found``, ``Absent`` only when every lookup answered cleanly, or
        ``Unreadable`` for a row that is ours but does not parse. Raises when a lookup fails (with
        ``max_weight``: ``WeightBudgetExceededError`` before passing it)."""
        ...

    def rate_limits(self) -> Sequence[tuple[str, RateLimitStatus | None]]:
        """Each exchange client's weight budget as the exchange last reported it (None before
        its first answer), named for whose budget it is: ``trading key`` first, then ``public``."""
        ...


class Markets:
    """Public market data: the market list (cached for ``ttl_seconds``, or until
    :meth:`invalidate`) and current prices (never cached here)."""

    def __init__(
        self, public: PublicMarketData, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._public = public
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[str, MarketInfo] = {}
        self._fetched = float("-inf")
        # Bumped by invalidate(): a list asked for before the bump never counts as fresh, even
        # when it arrives after it (it may predate the change the exchange just reported).
        self._generation = 0
        self._cached_generation = -1

    def _all(self) -> dict[str, MarketInfo]:
        with self._lock:
            if (
                self._cached
                and self._cached_generation == self._generation
                and self._clock() - self._fetched <= self._ttl
            ):
                return self._cached
            generation = self._generation
        asked_at = self._clock()
        fresh = {m.market: _market_info(m) for m in self._public.markets()}
        with self._lock:
            if generation == self._generation:
                self._cached, self._fetched, self._cached_generation = fresh, asked_at, generation
        return fresh

    def invalidate(self) -> None:
        """Drop the market list: the next reader asks the exchange again."""
        with self._lock:
            self._generation += 1

    def names(self) -> frozenset[str]:
        return frozenset(self._all())

    def info(self, market: str) -> MarketInfo | None:
        return self._all().get(market)

    def price(self, market: str) -> Decimal:
        return self._public.ticker_price(market).price

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The public (per IP) weight budget as last reported."""
        return self._public.rate_limit


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

    def rate_limits(self) -> Sequence[tuple[str, RateLimitStatus | None]]:
        return [("public", self._markets.rate_limit)]


class LiveVenue(PublicReads):
    """The real exchange (or the simulator): orders through the trade key's TradeClient."""

    mode = "live"

    def __init__(self, markets: Markets, trade: TradeClient) -> None:
        super().__init__(markets)
        self._trade = trade

    def verify(self) -> None:
        self._trade.verify_can_trade()

    def rate_limits(self) -> Sequence[tuple[str, RateLimitStatus | None]]:
        return [("trading key", self._trade.rate_limit), *super().rate_limits()]

    def free_balance(self, symbol: str, market: str) -> Decimal:
        return self._trade.balance(symbol).available

    def exchange_now_ms(self, *, fresh: bool = False) -> int:
        return self._trade.exchange_now_ms(fresh=fresh)

    def weight_tally(self) -> AbstractContextManager[WeightTally]:
        return self._trade.weight_tally()

    def place(
        self,
        *,
        market: str,
        side: Side,
        amount_quote: Decimal,
        client_order_id: str,
        sign_by_ms: int,
        amount: Decimal | None = None,
    ) -> OrderView:
        # signed with exchange time, never past sign_by_ms (SigningDeadlinePassedError: not sent)
        try:
            if amount is not None:
                order = self._trade.place_order(
                    market, side.value, OrderType.MARKET, client_order_id, amount=amount, sign_by_ms=sign_by_ms
                )
            else:
                order = self._trade.place_order(
                    market,
                    side.value,
                    OrderType.MARKET,
                    client_order_id,
                    amount_quote=amount_quote,
                    sign_by_ms=sign_by_ms,
                )
        except RequestRejectedError as exc:
            if says_market_rules_changed(exc):
                # The order was checked against rules the exchange no longer has: the next
                # execution checks against the exchange's current list. The refusal stands.
                log.warning("order refused for market rules (%s): market list dropped", exc.code)
                self._markets.invalidate()
            raise
        return order_view(order)

    def find(self, *, market: str, client_order_id: str, since_ms: int, max_weight: int | None) -> Lookup:
        result = self._trade.find_order(market, client_order_id, since_ms=since_ms, max_weight=max_weight)
        if isinstance(result, OrderAbsent):
            return Absent(result.searched_until_ms)
        if isinstance(result, Unparseable):
            return Unreadable(result.raw, result.reason, result.source)
        if result.order is not None:
            return Found(order_view(result.order, result.trades))
        return Found(_view_from_trades(result.trades))


# ------------------------------------------------------------------ exchange values → ours

_STATUS: dict[OrderStatus, Status] = {
    OrderStatus.NEW: Status.SUBMITTED,
    OrderStatus.AWAITING_TRIGGER: Status.SUBMITTED,
    OrderStatus.PARTIALLY_FILLED: Status.PARTIALLY_FILLED,
    OrderStatus.FILLED: Status.FILLED,
}


def order_view(order: Order, trades: tuple[Trade, ...] = ()) -> OrderView:
    """The execution's view of an exchange order (every final non-filled status is CANCELED).

    The fills are the order's own; an order from the history (``/orders``) may list none, and then
    its ``trades`` (``/trades``) are its fills. A fill without a settled fee leaves the view
    ``fee_pending``: the reconciler looks again until the exchange reports it."""
    if not order.fills and trades:
        return replace(_view_from_trades(trades), **_order_fields(order))
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
        fee_pending=any(f.fee is None or not f.settled for f in order.fills),
    )


def _order_fields(order: Order) -> dict[str, Any]:
    """What the order itself says, over a view built from its trades."""
    return {
        "order_id": order.order_id,
        "status": _STATUS.get(order.status, Status.CANCELED),
        "exchange_status": order.status.value,
        "filled_amount": order.filled_amount,
        "filled_amount_quote": order.filled_amount_quote,
        "raw": _jsonable(asdict(order)),
    }


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
        fee_pending=any(t.fee is None or not t.settled for t in trades),
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
