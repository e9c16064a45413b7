"""``TradeClient``: the only code that holds the trade key and can place an order.

It holds what the executor calls and nothing more: prove the key can trade, place an order,
find it again, read a balance (the calls only tests make — cancel, open orders, trades, all
balances — are in tests/support/trade_client.py). Every order carries the configured
``operatorId`` and the caller's ``clientOrderId``. A placement is sent exactly once, never
retried here (the executor never retries either):
its outcome is a typed ``Order``, a definitive refusal (``RequestRejectedError``,
``AuthenticationError``, ``PermissionDeniedError``, ``RateLimitedError``, ``NotSentError``) or
``OutcomeUnknownError`` — then the order is found afterwards by its clientOrderId
(``get_order``, then ``find_order_history``). Lookups are reads and are retried.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from shared.exchange.account import AccountReads
from shared.exchange.errors import (
    OutcomeUnknownError,
    PermissionDeniedError,
    UnexpectedResponseError,
)
from shared.exchange.orders import (
    Balance,
    Order,
    OrderHistoryMatch,
    OrderSide,
    OrderType,
    Trade,
)
from shared.exchange.permissions import NO_TRADE_PERMISSION, PROBE_MARKET, TradePermission, probe_trade_permission
from shared.exchange.sdk import ApiCredentials, BitvavoGateway, ExchangeSettings
from shared.exchange.wire import (
    as_list,
    check_market,
    check_uuid,
    to_ms,
    wire_decimal,
)

logger = logging.getLogger(__name__)

HISTORY_PAGE = 1000
MAX_HISTORY_PAGES = 50
_Row = TypeVar("_Row", Order, Trade)


def _call_with(fetch: Callable[[Any, dict[str, int]], Any], options: dict[str, int], sdk: Any) -> Any:
    return fetch(sdk, dict(options))


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
        self._probe_market = check_market(probe_market)

    def verify_can_trade(self) -> None:
        """Cancel a random order id: 240 proves the trade permission, 310 refuses the key."""
        permission = probe_trade_permission(self._gateway, market=self._probe_market, operator_id=self.operator_id)
        if permission is TradePermission.CANNOT_TRADE:
            logger.error("the executor's Bitvavo key cannot trade; refusing to start")
            raise PermissionDeniedError("this key does not allow trading actions", code=NO_TRADE_PERMISSION)

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
    ) -> Order:
        """Place one market or limit order, once. Bad arguments raise ``ValueError``/``TypeError``
        before anything is sent."""
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
        payload = self._gateway.write(
            "place order", lambda sdk: sdk.placeOrder(market, side.value, order_type.value, dict(body))
        )
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

    def find_order_history(self, market: str, client_order_id: UUID | str, since: datetime) -> OrderHistoryMatch:
        """Scan ``/orders`` and ``/trades`` of ``market`` from ``since`` for ``client_order_id``.

        ``found`` is False only when every page answered cleanly without it; any failure raises.
        """
        check_market(market)
        cid = check_uuid(client_order_id, "client_order_id")
        start = to_ms(since)
        orders = self._scan(
            "orders",
            lambda sdk, options: sdk.getOrders(market, options),
            Order.from_json,
            start_ms=start,
            stamp=lambda o: to_ms(o.created),
            identity=lambda o: o.order_id,
        )
        trades = self._scan(
            "trades",
            lambda sdk, options: sdk.trades(market, options),
            Trade.from_json,
            start_ms=start,
            stamp=lambda t: to_ms(t.timestamp),
            identity=lambda t: t.trade_id,
        )
        matching_orders = [o for o in orders if o.client_order_id == cid]
        matching_trades = tuple(t for t in trades if t.client_order_id == cid)
        return OrderHistoryMatch(order=matching_orders[0] if matching_orders else None, trades=matching_trades)

    def _scan(
        self,
        operation: str,
        fetch: Callable[[Any, dict[str, int]], Any],
        parse: Callable[[Any], _Row],
        *,
        start_ms: int,
        stamp: Callable[[_Row], int],
        identity: Callable[[_Row], str],
    ) -> list[_Row]:
        """Every row since ``start_ms``, newest first, page by page (a page's ``end`` is the oldest
        time seen so far, inclusive, so rows sharing that millisecond are not skipped)."""
        rows: dict[str, _Row] = {}
        end_ms: int | None = None

        def parse_page(payload: Any) -> list[_Row]:
            return [parse(row) for row in as_list(payload, operation)]

        for _ in range(MAX_HISTORY_PAGES):
            options: dict[str, int] = {"limit": HISTORY_PAGE, "start": start_ms}
            if end_ms is not None:
                options["end"] = end_ms
            page = self._gateway.read_as(operation, functools.partial(_call_with, fetch, options), parse_page)
            fresh = 0
            for row in page:
                if identity(row) not in rows:
                    rows[identity(row)] = row
                    fresh += 1
            if len(page) < HISTORY_PAGE:
                return list(rows.values())
            if fresh == 0:
                break  # a whole page within one millisecond: cannot page further
            end_ms = min(stamp(row) for row in page)
        raise UnexpectedResponseError(f"{operation}: history since {start_ms} too long to scan")

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
