"""``PublicMarketData``: the keyless market-data client every service uses.

Markets, tickers, candles, order books and public trades, as the typed values of
``shared.exchange.market``. Reads only, so every call is retried on transient failures (see
``BitvavoGateway.read``). ``rate_limit`` is the IP's budget as last reported by the exchange.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from shared.exchange.market import (
    CANDLE_INTERVALS,
    Candle,
    Market,
    OrderBook,
    PublicTrade,
    Ticker24h,
    TickerBook,
    TickerPrice,
)
from shared.exchange.sdk import BitvavoGateway, ExchangeSettings, RateLimitStatus
from shared.exchange.wire import as_list, as_mapping, check_market, single, to_ms

_R = TypeVar("_R")


class PublicMarketData:
    """Public endpoints, no API key. ``gateway`` may be shared with other clients of the same key."""

    def __init__(
        self,
        settings: ExchangeSettings | None = None,
        *,
        gateway: BitvavoGateway | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._gateway = gateway or BitvavoGateway(settings or ExchangeSettings(), sleep=sleep)

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        return self._gateway.rate_limit

    def markets(self) -> tuple[Market, ...]:
        return self._gateway.read_as(
            "markets",
            lambda sdk: sdk.markets({}),
            lambda p: tuple(Market.from_json(as_mapping(m, "market")) for m in as_list(p, "markets")),
        )

    def market(self, market: str) -> Market:
        check_market(market)
        return self._gateway.read_as(
            "markets", lambda sdk: sdk.markets({"market": market}), lambda p: Market.from_json(single(p, "market"))
        )

    def ticker_price(self, market: str) -> TickerPrice:
        check_market(market)
        return self._gateway.read_as(
            "ticker/price",
            lambda sdk: sdk.tickerPrice({"market": market}),
            lambda p: TickerPrice.from_json(single(p, "ticker price")),
        )

    def ticker_book(self, market: str) -> TickerBook:
        check_market(market)
        return self._gateway.read_as(
            "ticker/book",
            lambda sdk: sdk.tickerBook({"market": market}),
            lambda p: TickerBook.from_json(single(p, "ticker book")),
        )

    def ticker_24h(self, market: str) -> Ticker24h:
        """Weight 1 (all markets at once costs 25)."""
        check_market(market)
        return self._gateway.read_as(
            "ticker/24h",
            lambda sdk: sdk.ticker24h({"market": market}),
            lambda p: Ticker24h.from_json(single(p, "ticker 24h")),
        )

    def candles(
        self,
        market: str,
        interval: str,
        *,
        limit: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[Candle, ...]:
        """Candles newest first; intervals without trades are missing, not zero-filled."""
        check_market(market)
        if interval not in CANDLE_INTERVALS:
            raise ValueError(f"interval must be one of {sorted(CANDLE_INTERVALS)}")
        if limit is not None and not 1 <= limit <= 1440:
            raise ValueError("limit must be between 1 and 1440")
        options: dict[str, Any] = {}
        if start is not None:
            options["start"] = to_ms(start)
        if end is not None:
            options["end"] = to_ms(end)
        return self._gateway.read_as(
            "candles",
            lambda sdk: sdk.candles(market, interval, dict(options), limit=limit),
            lambda p: tuple(Candle.from_json(row) for row in as_list(p, "candles")),
        )

    def book(self, market: str, depth: int | None = None) -> OrderBook:
        check_market(market)
        if depth is not None and not 1 <= depth <= 1000:
            raise ValueError("depth must be between 1 and 1000")
        options = {} if depth is None else {"depth": depth}
        return self._gateway.read_as(
            "book", lambda sdk: sdk.book(market, dict(options)), lambda p: OrderBook.from_json(as_mapping(p, "book"))
        )

    def trades(self, market: str, limit: int | None = None) -> tuple[PublicTrade, ...]:
        """Public trades, newest first (weight 5)."""
        check_market(market)
        if limit is not None and not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        options = {} if limit is None else {"limit": limit}
        return self._gateway.read_as(
            "trades", lambda sdk: sdk.publicTrades(market, dict(options)), _rows(PublicTrade.from_json)
        )


def _rows(parse: Callable[[Mapping[str, Any]], _R]) -> Callable[[Any], tuple[_R, ...]]:
    def parse_all(payload: Any) -> tuple[_R, ...]:
        return tuple(parse(as_mapping(row, "row")) for row in as_list(payload, "rows"))

    return parse_all
