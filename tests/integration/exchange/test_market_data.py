"""Public market data through PublicMarketData: typed Decimal values, consistent with each other,
deterministic for a seed."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest

from shared.exchange.errors import RequestRejectedError
from shared.exchange.public import PublicMarketData
from shared.exchange.sdk import ExchangeSettings
from sim.bitvavo import BitvavoSimulator, SimClock, SimulatorAdmin
from tests.integration.exchange.all_markets import AllMarketsData


def test_markets_have_realistic_rules(public: PublicMarketData) -> None:
    markets = {m.market: m for m in public.markets()}
    assert len(markets) >= 10
    assert {"BTC-EUR", "ETH-EUR"} <= set(markets)
    for market in markets.values():
        assert market.quote == "EUR" and market.is_trading
        assert market.min_order_in_quote_asset == Decimal("5")
        assert isinstance(market.min_order_in_base_asset, Decimal) and market.min_order_in_base_asset > 0
        assert market.quantity_decimals is not None and market.notional_decimals == 2
        assert market.price_precision == 0  # deprecated live: "0"; the tick size rules prices
        assert market.tick_size is not None and market.tick_size > 0
    assert markets["BTC-EUR"].tick_size == Decimal("1.00") and markets["LTC-EUR"].tick_size == Decimal("0.001")
    assert public.market("BTC-EUR") == markets["BTC-EUR"]


def test_prices_book_and_tickers_agree(public: AllMarketsData) -> None:
    price = public.ticker_price("ETH-EUR").price
    best = public.ticker_book("ETH-EUR")
    book = public.book("ETH-EUR", depth=5)
    assert isinstance(price, Decimal)
    assert best.bid is not None and best.ask is not None
    assert best.bid < price < best.ask
    assert (book.bids[0].price, book.asks[0].price) == (best.bid, best.ask)
    assert [lv.price for lv in book.bids] == sorted((lv.price for lv in book.bids), reverse=True)
    assert [lv.price for lv in book.asks] == sorted(lv.price for lv in book.asks)
    assert len(book.bids) == 5
    day = public.ticker_24h("ETH-EUR")
    assert day.last == price
    assert day.low is not None and day.high is not None and day.low <= price <= day.high
    assert {t.market for t in public.ticker_prices()} >= {"BTC-EUR", "ETH-EUR"}
    assert len(public.tickers_24h()) == len(public.markets())


def test_candles_are_newest_first_one_interval_apart(public: PublicMarketData) -> None:
    candles = public.candles("BTC-EUR", "1h", limit=24)
    assert len(candles) == 24
    starts = [c.start for c in candles]
    assert all(a - b == timedelta(hours=1) for a, b in itertools.pairwise(starts))
    assert all(c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close) for c in candles)
    assert candles[0].close == public.ticker_price("BTC-EUR").price
    window = public.candles("BTC-EUR", "1h", start=starts[5], end=starts[2])
    assert [c.start for c in window] == starts[2:6]


def test_unknown_market_is_205_and_not_retried(admin: SimulatorAdmin, public: PublicMarketData) -> None:
    with pytest.raises(RequestRejectedError) as caught:
        public.ticker_price("NOPE-EUR")
    assert caught.value.code == 205
    assert admin.request_count("/ticker/price") == 1  # a refusal is final, unlike a 107


def test_admin_sets_prices_and_counts_requests(admin: SimulatorAdmin, public: PublicMarketData) -> None:
    admin.set_price("SOL-EUR", "123.45")
    assert public.ticker_price("SOL-EUR").price == Decimal("123.45")
    assert admin.prices()["SOL-EUR"] == Decimal("123.45")
    public.candles("SOL-EUR", "1m", limit=2)
    public.candles("SOL-EUR", "5m", limit=2)
    assert admin.request_count("/ticker/price") == 1
    assert admin.request_count("/{market}/candles") == 2
    assert admin.request_count("/SOL-EUR/candles") == 2
    assert public.rate_limit is not None and public.rate_limit.remaining == 1000 - 3


def _snapshot(sim: BitvavoSimulator) -> tuple[object, ...]:
    public = AllMarketsData(ExchangeSettings(rest_url=sim.base_url, read_attempts=1))
    return (
        [t.price for t in public.ticker_prices()],
        [(c.open, c.high, c.low, c.close, c.volume) for c in public.candles("ETH-EUR", "1m", limit=60)],
        public.book("BTC-EUR", depth=10).asks,
    )


def test_same_seed_same_market_different_seed_different_market() -> None:
    clock = SimClock()
    clock.advance_to_minute_start(extra_ms=1_000)  # all three start in the same price step
    with (
        BitvavoSimulator(seed=7, clock=clock) as one,
        BitvavoSimulator(seed=7, clock=clock) as two,
        BitvavoSimulator(seed=8, clock=clock) as other,
    ):
        first, second, third = _snapshot(one), _snapshot(two), _snapshot(other)
        assert first == second
        assert first[1] != third[1] and first[2] != third[2]
        clock.advance(10 * 60_000)  # ten steps on: the walk moves, identically for one seed
        moved_one, moved_two = _snapshot(one), _snapshot(two)
        assert moved_one == moved_two
        assert moved_one[0] != first[0]
