"""Typed public market data: markets, tickers, candles, order books, public trades.

Frozen dataclasses with ``Decimal`` amounts and aware UTC datetimes, each with a ``from_json`` that
raises ``UnexpectedResponseError`` on a malformed answer. Used by every service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.exchange.errors import UnexpectedResponseError
from shared.exchange.wire import (
    as_list,
    decimal_field,
    field,
    from_ms,
    int_field,
    optional_decimal,
    str_field,
    time_field,
    to_decimal,
)

CANDLE_INTERVALS = frozenset({"1m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "1W", "1M"})


@dataclass(frozen=True)
class Market:
    """One market as ``GET /markets`` describes it."""

    market: str
    status: str  # trading, halted, auction, auctionMatching, cancelOnly
    base: str
    quote: str
    price_precision: int  # significant digits allowed in a price
    min_order_in_base_asset: Decimal
    min_order_in_quote_asset: Decimal
    max_order_in_base_asset: Decimal | None
    max_order_in_quote_asset: Decimal | None
    quantity_decimals: int | None  # decimals allowed in ``amount``
    notional_decimals: int | None  # decimals allowed in ``amountQuote``
    tick_size: Decimal | None
    order_types: tuple[str, ...]

    @property
    def is_trading(self) -> bool:
        return self.status == "trading"

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Market:
        def optional_int(name: str) -> int | None:
            return None if obj.get(name) is None else int_field(obj, name)

        order_types = obj.get("orderTypes") or []
        return cls(
            market=str_field(obj, "market"),
            status=str_field(obj, "status"),
            base=str_field(obj, "base"),
            quote=str_field(obj, "quote"),
            price_precision=int_field(obj, "pricePrecision"),
            min_order_in_base_asset=decimal_field(obj, "minOrderInBaseAsset"),
            min_order_in_quote_asset=decimal_field(obj, "minOrderInQuoteAsset"),
            max_order_in_base_asset=optional_decimal(obj, "maxOrderInBaseAsset"),
            max_order_in_quote_asset=optional_decimal(obj, "maxOrderInQuoteAsset"),
            quantity_decimals=optional_int("quantityDecimals"),
            notional_decimals=optional_int("notionalDecimals"),
            tick_size=optional_decimal(obj, "tickSize"),
            order_types=tuple(str(t) for t in as_list(order_types, "orderTypes")),
        )


@dataclass(frozen=True)
class TickerPrice:
    market: str
    price: Decimal

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TickerPrice:
        return cls(market=str_field(obj, "market"), price=decimal_field(obj, "price"))


@dataclass(frozen=True)
class TickerBook:
    """Best bid and ask; a side is ``None`` when that side of the book is empty."""

    market: str
    bid: Decimal | None
    bid_size: Decimal | None
    ask: Decimal | None
    ask_size: Decimal | None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TickerBook:
        return cls(
            market=str_field(obj, "market"),
            bid=optional_decimal(obj, "bid"),
            bid_size=optional_decimal(obj, "bidSize"),
            ask=optional_decimal(obj, "ask"),
            ask_size=optional_decimal(obj, "askSize"),
        )


@dataclass(frozen=True)
class Ticker24h:
    """The last 24 hours of a market; price fields are ``None`` when nothing traded."""

    market: str
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    last: Decimal | None
    volume: Decimal | None
    volume_quote: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    timestamp: datetime | None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Ticker24h:
        stamp = obj.get("timestamp")
        return cls(
            market=str_field(obj, "market"),
            open=optional_decimal(obj, "open"),
            high=optional_decimal(obj, "high"),
            low=optional_decimal(obj, "low"),
            last=optional_decimal(obj, "last"),
            volume=optional_decimal(obj, "volume"),
            volume_quote=optional_decimal(obj, "volumeQuote"),
            bid=optional_decimal(obj, "bid"),
            ask=optional_decimal(obj, "ask"),
            timestamp=None if stamp is None else from_ms(stamp, "timestamp"),
        )


@dataclass(frozen=True)
class Candle:
    """One OHLCV candle; ``start`` is the interval's opening time."""

    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @classmethod
    def from_json(cls, row: Any) -> Candle:
        items = as_list(row, "candle")
        if len(items) < 6:
            raise UnexpectedResponseError(f"candle: expected 6 values, got {row!r}")
        return cls(
            start=from_ms(items[0], "candle timestamp"),
            open=to_decimal(items[1], "open"),
            high=to_decimal(items[2], "high"),
            low=to_decimal(items[3], "low"),
            close=to_decimal(items[4], "close"),
            volume=to_decimal(items[5], "volume"),
        )


@dataclass(frozen=True)
class BookLevel:
    price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class OrderBook:
    """Bids best (highest) first, asks best (lowest) first."""

    market: str
    nonce: int
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> OrderBook:
        def levels(name: str) -> tuple[BookLevel, ...]:
            result = []
            for row in as_list(field(obj, name), name):
                pair = as_list(row, name)
                if len(pair) < 2:
                    raise UnexpectedResponseError(f"{name}: expected [price, amount], got {row!r}")
                result.append(BookLevel(to_decimal(pair[0], "price"), to_decimal(pair[1], "amount")))
            return tuple(result)

        return cls(
            market=str_field(obj, "market"),
            nonce=int_field(obj, "nonce"),
            bids=levels("bids"),
            asks=levels("asks"),
        )


@dataclass(frozen=True)
class PublicTrade:
    trade_id: str
    timestamp: datetime
    amount: Decimal
    price: Decimal
    side: str

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PublicTrade:
        return cls(
            trade_id=str_field(obj, "id"),
            timestamp=time_field(obj, "timestamp"),
            amount=decimal_field(obj, "amount"),
            price=decimal_field(obj, "price"),
            side=str_field(obj, "side"),
        )
