"""Typed account data shared by the executor and the scanner: orders, their fills, own trades,
balances and cancel receipts, parsed from Bitvavo's order object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from shared.exchange.errors import UnexpectedResponseError
from shared.exchange.wire import (
    as_list,
    as_mapping,
    bool_field,
    decimal_field,
    field,
    optional_decimal,
    str_field,
    time_field,
)


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_LOSS = "stopLoss"
    STOP_LOSS_LIMIT = "stopLossLimit"
    TAKE_PROFIT = "takeProfit"
    TAKE_PROFIT_LIMIT = "takeProfitLimit"


class OrderStatus(StrEnum):
    """Every status Bitvavo documents, plus ``expired``/``rejected`` that ccxt still maps."""

    NEW = "new"
    AWAITING_TRIGGER = "awaitingTrigger"
    PARTIALLY_FILLED = "partiallyFilled"
    FILLED = "filled"
    CANCELED = "canceled"
    CANCELED_AUCTION = "canceledAuction"
    CANCELED_SELF_TRADE_PREVENTION = "canceledSelfTradePrevention"
    CANCELED_IOC = "canceledIOC"
    CANCELED_FOK = "canceledFOK"
    CANCELED_MARKET_PROTECTION = "canceledMarketProtection"
    CANCELED_POST_ONLY = "canceledPostOnly"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_active(self) -> bool:
        """Still working at the exchange (can fill or be cancelled)."""
        return self in _ACTIVE


_E = TypeVar("_E", bound=StrEnum)
_ACTIVE = frozenset({OrderStatus.NEW, OrderStatus.AWAITING_TRIGGER, OrderStatus.PARTIALLY_FILLED})


def _enum(kind: type[_E], obj: Mapping[str, Any], name: str) -> _E:
    raw = str_field(obj, name)
    try:
        return kind(raw)
    except ValueError:
        raise UnexpectedResponseError(f"{name}: unknown value {raw!r}") from None


def _fill_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a fill of an order (``fills`` of /order) and a trade (/trades) both say about it."""
    fee_currency = obj.get("feeCurrency")
    return {
        "timestamp": time_field(obj, "timestamp"),
        "amount": decimal_field(obj, "amount"),
        "price": decimal_field(obj, "price"),
        "taker": bool_field(obj, "taker", False),
        "fee": optional_decimal(obj, "fee"),
        "fee_currency": None if fee_currency is None else str(fee_currency),
        "settled": bool_field(obj, "settled", True),
    }


@dataclass(frozen=True)
class Fill:
    """One execution of an order. ``fee`` is ``None`` while the fill is not settled."""

    fill_id: str
    timestamp: datetime
    amount: Decimal
    price: Decimal
    taker: bool
    fee: Decimal | None
    fee_currency: str | None
    settled: bool

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Fill:
        return cls(fill_id=str_field(obj, "id"), **_fill_fields(obj))


@dataclass(frozen=True)
class Order:
    """An order as the exchange reports it (POST/GET /order, /orders, /ordersOpen).

    Quote-sized orders carry ``amount_quote``/``amount_quote_remaining`` and no ``amount``/``price``;
    base-sized ones the reverse.
    """

    order_id: str
    client_order_id: str | None
    market: str
    side: OrderSide
    order_type: OrderType
    status: OrderStatus
    created: datetime
    updated: datetime
    amount: Decimal | None
    amount_remaining: Decimal | None
    amount_quote: Decimal | None
    amount_quote_remaining: Decimal | None
    price: Decimal | None
    on_hold: Decimal | None
    on_hold_currency: str | None
    filled_amount: Decimal
    filled_amount_quote: Decimal
    fee_paid: Decimal
    fee_currency: str | None
    fills: tuple[Fill, ...]
    time_in_force: str | None
    post_only: bool
    operator_id: int | None
    restatement_reason: str | None

    @property
    def is_active(self) -> bool:
        return self.status.is_active

    @classmethod
    def from_json(cls, payload: Any) -> Order:
        obj = as_mapping(payload, "order")
        client_order_id = obj.get("clientOrderId")
        operator_id = obj.get("operatorId")
        fee_currency = obj.get("feeCurrency")
        on_hold_currency = obj.get("onHoldCurrency")
        reason = obj.get("restatementReason")
        tif = obj.get("timeInForce")
        return cls(
            order_id=str_field(obj, "orderId"),
            client_order_id=None if client_order_id is None else str(client_order_id),
            market=str_field(obj, "market"),
            side=_enum(OrderSide, obj, "side"),
            order_type=_enum(OrderType, obj, "orderType"),
            status=_enum(OrderStatus, obj, "status"),
            created=time_field(obj, "created"),
            updated=time_field(obj, "updated"),
            amount=optional_decimal(obj, "amount"),
            amount_remaining=optional_decimal(obj, "amountRemaining"),
            amount_quote=optional_decimal(obj, "amountQuote"),
            amount_quote_remaining=optional_decimal(obj, "amountQuoteRemaining"),
            price=optional_decimal(obj, "price"),
            on_hold=optional_decimal(obj, "onHold"),
            on_hold_currency=None if on_hold_currency is None else str(on_hold_currency),
            filled_amount=decimal_field(obj, "filledAmount"),
            filled_amount_quote=decimal_field(obj, "filledAmountQuote"),
            fee_paid=decimal_field(obj, "feePaid"),
            fee_currency=None if fee_currency is None else str(fee_currency),
            fills=tuple(Fill.from_json(as_mapping(f, "fill")) for f in as_list(obj.get("fills", []), "fills")),
            time_in_force=None if tif is None else str(tif),
            post_only=bool_field(obj, "postOnly", False),
            operator_id=None if operator_id is None or isinstance(operator_id, bool) else int(operator_id),
            restatement_reason=None if reason is None else str(reason),
        )


@dataclass(frozen=True)
class Trade:
    """One of the account's own fills, as ``GET /trades`` lists it."""

    trade_id: str
    order_id: str
    client_order_id: str | None
    market: str
    side: OrderSide
    timestamp: datetime
    amount: Decimal
    price: Decimal
    taker: bool
    fee: Decimal | None
    fee_currency: str | None
    settled: bool

    @classmethod
    def from_json(cls, payload: Any) -> Trade:
        obj = as_mapping(payload, "trade")
        client_order_id = obj.get("clientOrderId")
        return cls(
            trade_id=str_field(obj, "id"),
            order_id=str_field(obj, "orderId"),
            client_order_id=None if client_order_id is None else str(client_order_id),
            market=str_field(obj, "market"),
            side=_enum(OrderSide, obj, "side"),
            **_fill_fields(obj),
        )


@dataclass(frozen=True)
class Balance:
    symbol: str
    available: Decimal
    in_order: Decimal

    @property
    def total(self) -> Decimal:
        return self.available + self.in_order

    @classmethod
    def from_json(cls, payload: Any) -> Balance:
        obj = as_mapping(payload, "balance")
        return cls(
            symbol=str_field(obj, "symbol"),
            available=decimal_field(obj, "available"),
            in_order=decimal_field(obj, "inOrder"),
        )


@dataclass(frozen=True)
class CancelReceipt:
    """What ``DELETE /order`` answers: the cancelled order's ids."""

    order_id: str
    client_order_id: str | None
    operator_id: int | None

    @classmethod
    def from_json(cls, payload: Any) -> CancelReceipt:
        obj = as_mapping(payload, "cancel")
        client_order_id = obj.get("clientOrderId")
        operator_id = obj.get("operatorId")
        return cls(
            order_id=str(field(obj, "orderId")),
            client_order_id=None if client_order_id is None else str(client_order_id),
            operator_id=None if operator_id is None or isinstance(operator_id, bool) else int(operator_id),
        )
