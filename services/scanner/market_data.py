"""Public market data for scans, read once per market per cycle and shared by every job in it.

A cycle is one claim batch of the scheduler (or one RunScan): :meth:`MarketData.snapshots` is
called once with the union of the batch's markets and fetches each market once — its 24-hour
ticker (last price, best bid/ask, volume; weight 1) and its candles (weight 1) — so the exchange
weight spent grows with the number of markets, never with the number of users or jobs. A short
TTL cache (``market_data_ttl_seconds``) lets scans that follow each other closely share too;
concurrent fetches of one market wait for the first (single flight). The market list
(``GET /markets``, weight 1: rules and trading status of every market) is read once per cycle too.

The exchange's weight budget is respected: before a request, the last reported
``bitvavo-ratelimit-remaining`` must leave ``reserve`` points, else nothing is sent until the
reported reset; a 105 ban (RateLimitedError) stops every request until its reset time. Either
way the scan fails with :class:`MarketDataError` carrying ``retry_at``, and the job backs off to
at least that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.clock import Clock, SystemClock
from shared.exchange.errors import ExchangeError, RateLimitedError
from shared.exchange.market import Candle, Market
from shared.exchange.public import PublicMarketData

log = logging.getLogger(__name__)

WEIGHT_PER_MARKET = 2  # ticker/24h with a market + candles
RATE_LIMIT_FALLBACK = timedelta(seconds=60)  # a 105 without a readable reset time


@dataclass(frozen=True)
class MarketSnapshot:
    """What the analysts see of one market at one moment."""

    market: str
    status: str
    price: Decimal
    bid: Decimal | None
    ask: Decimal | None
    volume_24h: Decimal | None
    min_order_quote: Decimal
    candle_interval: str
    candles: tuple[Candle, ...]  # oldest first
    fetched_at: datetime

    @property
    def closes(self) -> tuple[Decimal, ...]:
        return tuple(c.close for c in self.candles)

    def to_json(self) -> dict[str, Any]:
        """The proposal's ``market_snapshot``: ``price`` is the last price as a decimal string (the
        executor's price guard compares the current price with it)."""

        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        last = self.candles[-1] if self.candles else None
        return {
            "market": self.market,
            "price": str(self.price),
            "bid": text(self.bid),
            "ask": text(self.ask),
            "volume_24h": text(self.volume_24h),
            "min_order_quote": str(self.min_order_quote),
            "candle_interval": self.candle_interval,
            "candle_count": len(self.candles),
            "last_candle_start": None if last is None else last.start.isoformat(),
            "last_close": None if last is None else str(last.close),
            "fetched_at": self.fetched_at.isoformat(),
            "source": "bitvavo",
        }


class MarketDataError(Exception):
    """No usable data for a market. ``transient`` failures fail the scan (it is retried with
    back-off, not before ``retry_at``); others are a per-market skip reason."""

    def __init__(self, reason: str, detail: str, *, transient: bool, retry_at: datetime | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.retry_at = retry_at


class WeightGate:
    """Decides whether a request may be sent now, from the exchange's own rate-limit reports."""

    def __init__(self, public: PublicMarketData, *, reserve: int, wall: Clock) -> None:
        self._public = public
        self._reserve = reserve
        self._wall = wall
        self._lock = threading.Lock()
        self._banned_until: datetime | None = None

    def check(self, weight: int) -> None:
        """Raise MarketDataError (RATE_LIMITED) when sending ``weight`` points now could trip 105."""
        now = self._wall.now()
        with self._lock:
            banned = self._banned_until
        if banned is not None and now < banned:
            raise MarketDataError(
                "RATE_LIMITED", f"banned by the exchange until {banned.isoformat()}", transient=True, retry_at=banned
            )
        status = self._public.rate_limit
        if status is not None and now < status.reset_at and status.remaining - weight < self._reserve:
            raise MarketDataError(
                "RATE_LIMITED",
                f"{status.remaining} weight left until {status.reset_at.isoformat()} (keeping {self._reserve})",
                transient=True,
                retry_at=status.reset_at,
            )

    def banned(self, error: RateLimitedError) -> MarketDataError:
        """Record a 105 ban; the error to report."""
        until = error.reset_at or self._wall.now() + RATE_LIMIT_FALLBACK
        with self._lock:
            if self._banned_until is None or until > self._banned_until:
                self._banned_until = until
        log.warning("exchange rate limit hit: no market data requests until %s", until.isoformat())
        return MarketDataError(
            "RATE_LIMITED", f"error {error.code}: banned until {until.isoformat()}", transient=True, retry_at=until
        )


class MarketData:
    """Per-cycle market snapshots over ``PublicMarketData`` (see the module docstring)."""

    def __init__(
        self,
        public: PublicMarketData,
        clock: Clock,
        *,
        candle_interval: str,
        candle_count: int,
        ttl_seconds: float,
        reserve: int,
        wall: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._public = public
        self._clock = clock
        self._interval = candle_interval
        self._count = candle_count
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self.gate = WeightGate(public, reserve=reserve, wall=wall or SystemClock())
        self._lock = threading.Lock()
        self._flights: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[float, MarketSnapshot]] = {}
        self._markets: tuple[float, dict[str, Market]] | None = None
        self._markets_flight = threading.Lock()

    def snapshots(self, markets: Iterable[str]) -> dict[str, MarketSnapshot | MarketDataError]:
        """One snapshot (or the reason there is none) per distinct market, each fetched at most once."""
        result: dict[str, MarketSnapshot | MarketDataError] = {}
        for market in dict.fromkeys(markets):
            try:
                result[market] = self._snapshot(market)
            except MarketDataError as exc:
                result[market] = exc
        return result

    def _snapshot(self, market: str) -> MarketSnapshot:
        with self._lock:
            flight = self._flights.setdefault(market, threading.Lock())
        with flight:
            cached = self._cache.get(market)
            if cached is not None and self._monotonic() - cached[0] < self._ttl:
                return cached[1]
            snapshot = self._fetch(market)
            self._cache[market] = (self._monotonic(), snapshot)
            return snapshot

    def _market_rules(self) -> dict[str, Market]:
        with self._markets_flight:
            if self._markets is not None and self._monotonic() - self._markets[0] < self._ttl:
                return self._markets[1]
            self.gate.check(1)
            listed = self._call("markets", self._public.markets)
            self._markets = (self._monotonic(), {m.market: m for m in listed})
            return self._markets[1]

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except RateLimitedError as exc:
            raise self.gate.banned(exc) from exc
        except ExchangeError as exc:
            raise MarketDataError(
                "MARKET_DATA_UNAVAILABLE", f"{what}: {type(exc).__name__}: {exc}", transient=True
            ) from exc

    def _fetch(self, market: str) -> MarketSnapshot:
        rules = self._market_rules().get(market)
        if rules is None:
            raise MarketDataError("MARKET_UNKNOWN", f"{market} is not listed at the exchange", transient=False)
        if not rules.is_trading:
            raise MarketDataError("MARKET_NOT_TRADING", f"{market} is {rules.status}", transient=False)
        self.gate.check(WEIGHT_PER_MARKET)
        ticker = self._call("ticker", lambda: self._public.ticker_24h(market))
        raw = self._call("candles", lambda: self._public.candles(market, self._interval, limit=self._count))
        candles = tuple(sorted(raw, key=lambda c: c.start))
        price = ticker.last if ticker.last is not None else (candles[-1].close if candles else None)
        if price is None or price <= 0:
            raise MarketDataError("NO_PRICE", f"{market} has no last price", transient=False)
        return MarketSnapshot(
            market=market,
            status=rules.status,
            price=price,
            bid=ticker.bid,
            ask=ticker.ask,
            volume_24h=ticker.volume,
            min_order_quote=rules.min_order_in_quote_asset,
            candle_interval=self._interval,
            candles=candles,
            fetched_at=self._clock.now(),
        )
