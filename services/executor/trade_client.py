"""``TradeClient``: the only code that holds the trade key and can place an order.

It holds what the executor calls and nothing more: prove the key can trade, place an order,
find it again (``shared.exchange.history.OrderLookup``), read a balance (the calls only tests make — cancel, open orders, trades, all
balances — are in tests/support/trade_client.py). Every order carries the configured
``operatorId`` and the caller's ``clientOrderId``. A placement is sent exactly once, never
retried here (the executor never retries either):
its outcome is a typed ``Order``, a definitive refusal (``RequestRejectedError``,
``AuthenticationError``, ``PermissionDeniedError``, ``RateLimitedError``, ``NotSentError``) or
``OutcomeUnknownError`` — then the order is found afterwards by its clientOrderId
(``find_order``). Lookups are reads and are retried. Orders are signed with exchange time
(``exchange_now_ms``), and never past the caller's signing deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any
from uuid import UUID

import requests

from shared.exchange.account import AccountReads
from shared.exchange.errors import (
    ExchangeError,
    OutcomeUnknownError,
    PermissionDeniedError,
    UnexpectedResponseError,
)
from shared.exchange.history import LookupResult, OrderLookup
from shared.exchange.orders import Balance, Order, OrderSide, OrderType
from shared.exchange.permissions import NO_TRADE_PERMISSION, PROBE_MARKET, TradePermission, probe_trade_permission
from shared.exchange.sdk import ApiCredentials, BitvavoGateway, ExchangeSettings, RateLimitStatus
from shared.exchange.weights import WeightTally
from shared.exchange.wire import check_market, check_uuid, wire_decimal

logger = logging.getLogger(__name__)


class TradeClient:
    """Orders and balances of the account behind a trade key.

    Construction does no I/O; ``verify_can_trade`` proves the key can trade.
    """

    def __init__(
        self,
        credentials: ApiCredentials,
        *,
        operator_id: int,
        settings: ExchangeSettings | None = None,
        probe_market: str = PROBE_MARKET,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``sleep`` is what read retries wait with (tests inject one that moves a fake clock)."""
        if isinstance(operator_id, bool) or not isinstance(operator_id, int) or not -(2**63) <= operator_id < 2**63:
            raise ValueError("operator_id must be an int64")
        self.operator_id = operator_id
        self._gateway = BitvavoGateway(settings or ExchangeSettings(), credentials, sleep=sleep)
        self._account = AccountReads(self._gateway)
        self._lookup = OrderLookup(self._gateway)
        self._probe_market = check_market(probe_market)

    def verify_can_trade(self) -> None:
        """Cancel a random order id: 240 proves the trade permission, 310 refuses the key."""
        permission = probe_trade_permission(self._gateway, market=self._probe_market, operator_id=self.operator_id)
        if permission is TradePermission.CANNOT_TRADE:
            logger.error("the executor's Bitvavo key cannot trade; refusing to start")
            raise PermissionDeniedError("this key does not allow trading actions", code=NO_TRADE_PERMISSION)

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The trade key's weight budget as the exchange last reported it."""
        return self._gateway.rate_limit

    # -- writes: sent once ---------------------------------------------------------------------
    def place_order(
        self,
        market: str,
        side: OrderSide | str,
        order_type: OrderType | str,
        client_order_id: UUID | str,
        *,
        amount_quote: Decimal | None = None,
        amount: Decimal | None = None,
        price: Decimal | None = None,
        time_in_force: str | None = None,
        post_only: bool | None = None,
        sign_by_ms: int | None = None,
    ) -> Order:
        """Place one market or limit order, once. Bad arguments raise ``ValueError``/``TypeError``
        before anything is sent. ``sign_by_ms`` (exchange time): past it at the moment of signing,
        ``SigningDeadlinePassedError`` and nothing is sent."""
        check_market(market)
        side = OrderSide(side)
        order_type = OrderType(order_type)
        cid = check_uuid(client_order_id, "client_order_id")
        body: dict[str, Any] = {
            "operatorId": self.operator_id,
            "clientOrderId": cid,
            **_sizing(order_type, amount=amount, amount_quote=amount_quote, price=price),
            **_limit_options(order_type, time_in_force=time_in_force, post_only=post_only),
        }
        logger.info("placing %s %s order on %s, clientOrderId %s", side.value, order_type.value, market, cid)
        # signed with exchange time, never past sign_by_ms (SigningDeadlinePassedError: not sent)
        payload = self._gateway.place_order(market, side.value, order_type.value, body, sign_by_ms=sign_by_ms)
        try:
            order = Order.from_json(payload)
        except UnexpectedResponseError as exc:
            raise OutcomeUnknownError(f"place order: the answer is not an order: {exc}") from exc
        if order.client_order_id is not None and order.client_order_id != cid:
            raise OutcomeUnknownError(f"place order: answer is for clientOrderId {order.client_order_id}, not {cid}")
        return order

    # -- reads: retried ------------------------------------------------------------------------
    def get_order(
        self, market: str, *, order_id: UUID | str | None = None, client_order_id: UUID | str | None = None
    ) -> Order:
        """One order, open or closed; ``OrderNotFoundError`` (240) when the exchange has none.
        By clientOrderId when given (the SDK's getOrder cannot, so this signs the request itself)."""
        check_market(market)
        if client_order_id is not None:
            query = f"?market={market}&clientOrderId={check_uuid(client_order_id, 'client_order_id')}"
            return self._gateway.read_as(
                "get order", lambda sdk: sdk.privateRequest("/order", query, {}, "GET"), Order.from_json
            )
        if order_id is None:
            raise ValueError("give order_id or client_order_id")
        oid = check_uuid(order_id, "order_id")
        return self._gateway.read_as("get order", lambda sdk: sdk.getOrder(market, oid), Order.from_json)

    def find_order(
        self, market: str, client_order_id: UUID | str, *, since_ms: int, max_weight: int | None = None
    ) -> LookupResult:
        """Look an order up by clientOrderId from ``since_ms`` (exchange time) to the exchange
        clock's now, through ``OrderLookup`` (GET /order, then /orders and /trades in 24 h windows,
        paged; other users' rows skipped unparsed). Any failed request raises; with
        ``max_weight``, ``WeightBudgetExceededError`` before a request that would pass it."""
        return self._lookup.find(market, client_order_id, since_ms=since_ms, max_weight=max_weight)

    # -- the exchange clock and weight ---------------------------------------------------------
    def exchange_now_ms(self, *, fresh: bool = False) -> int:
        """Exchange time now (epoch ms). ``fresh``: measure the offset with ``GET /time`` first
        (errors raise); otherwise re-measure only a stale offset, keeping the last one if that
        fails (the signature-time check re-measures and refuses past the deadline anyway)."""
        clock = self._gateway.clock
        if fresh:
            clock.sync()
        else:
            try:
                clock.refresh_if_stale()
            except (ExchangeError, requests.exceptions.RequestException, ValueError) as exc:
                logger.warning("exchange clock not re-measured (%s); using the last offset", type(exc).__name__)
        return clock.now_ms()

    def weight_tally(self) -> AbstractContextManager[WeightTally]:
        """Counts the weight this thread sends inside the block."""
        return self._gateway.meter.tally()

    # -- account reads: AccountReads (shared with the scanner's view-only account), retried ------
    def balance(self, symbol: str) -> Balance:
        """One asset's balance; zero when the account holds none."""
        return self._account.balance(symbol)


def _sizing(
    order_type: OrderType, *, amount: Decimal | None, amount_quote: Decimal | None, price: Decimal | None
) -> dict[str, str]:
    """The size fields of an order body: a market order takes exactly one of amount and
    amount_quote, a limit order amount and price; anything else is a ValueError before sending."""
    if order_type is OrderType.MARKET:
        if (amount is None) == (amount_quote is None):
            raise ValueError("a market order needs exactly one of amount and amount_quote")
        if price is not None:
            raise ValueError("a market order takes no price, time_in_force or post_only")
    elif order_type is OrderType.LIMIT:
        if amount is None or price is None or amount_quote is not None:
            raise ValueError("a limit order needs amount and price, and no amount_quote")
    else:
        raise ValueError(f"order type {order_type.value} is not supported by this client")
    sizes = (("amount", "amount", amount), ("amountQuote", "amount_quote", amount_quote), ("price", "price", price))
    return {key: wire_decimal(value, name) for key, name, value in sizes if value is not None}


def _limit_options(order_type: OrderType, *, time_in_force: str | None, post_only: bool | None) -> dict[str, Any]:
    """timeInForce and postOnly, which only a limit order takes."""
    options: dict[str, Any] = {}
    if time_in_force is None and post_only is None:
        return options
    if order_type is OrderType.MARKET:
        raise ValueError("a market order takes no price, time_in_force or post_only")
    if time_in_force is not None:
        if time_in_force not in ("GTC", "IOC", "FOK"):
            raise ValueError("time_in_force must be GTC, IOC or FOK")
        options["timeInForce"] = time_in_force
    if post_only is not None:
        options["postOnly"] = bool(post_only)
    return options
