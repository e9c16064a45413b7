"""``FullTradeClient``: the executor's TradeClient plus the calls only tests make.

The executor never cancels an order or lists the account's open orders, trades or balances, so
those calls are not in the production client (services/executor/trade_client.py); tests that
act on the account behind the executor's back, or exercise the simulator, use this one.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.executor.trade_client import TradeClient
from shared.exchange.errors import OutcomeUnknownError, UnexpectedResponseError
from shared.exchange.orders import Balance, CancelReceipt, Order, Trade
from shared.exchange.permissions import PROBE_MARKET
from shared.exchange.sdk import ApiCredentials, ExchangeSettings, RateLimitStatus
from shared.exchange.wire import check_market, check_uuid


class FullTradeClient(TradeClient):
    """TradeClient with cancel, open orders, trades, all balances and the rate-limit status."""

    @classmethod
    def connect(
        cls,
        credentials: ApiCredentials,
        *,
        operator_id: int,
        settings: ExchangeSettings | None = None,
        probe_market: str = PROBE_MARKET,
    ) -> FullTradeClient:
        """A client whose key has been proven to trade (``PermissionDeniedError`` otherwise)."""
        client = cls(credentials, operator_id=operator_id, settings=settings, probe_market=probe_market)
        client.verify_can_trade()
        return client

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        return self._gateway.rate_limit

    def cancel_order(
        self, market: str, *, order_id: UUID | str | None = None, client_order_id: UUID | str | None = None
    ) -> CancelReceipt:
        """Cancel one order, once (clientOrderId wins when both are given)."""
        check_market(market)
        operator_id = self.operator_id
        if client_order_id is not None:
            cid = check_uuid(client_order_id, "client_order_id")
            query = f"?market={market}&clientOrderId={cid}&operatorId={operator_id}"
            payload = self._gateway.write("cancel order", lambda sdk: sdk.privateRequest("/order", query, {}, "DELETE"))
        elif order_id is not None:
            oid = check_uuid(order_id, "order_id")
            payload = self._gateway.write("cancel order", lambda sdk: sdk.cancelOrder(market, oid, operator_id))
        else:
            raise ValueError("give order_id or client_order_id")
        try:
            return CancelReceipt.from_json(payload)
        except UnexpectedResponseError as exc:
            raise OutcomeUnknownError(f"cancel order: unexpected answer: {exc}") from exc

    def open_orders(self, market: str | None = None) -> tuple[Order, ...]:
        return self._account.open_orders(market)

    def trades(
        self, market: str, *, limit: int | None = None, start: datetime | None = None, end: datetime | None = None
    ) -> tuple[Trade, ...]:
        check_market(market)  # the market before limit/start/end, as this client always checked them
        return self._account.trades(market, limit=limit, start=start, end=end)

    def balances(self) -> tuple[Balance, ...]:
        return self._account.balances()
