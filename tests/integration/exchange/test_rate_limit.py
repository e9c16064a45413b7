"""Weights, the 105 ban the SDK parses, and the budget coming back, on an advanceable clock."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests

from shared.exchange.errors import RateLimitedError
from shared.exchange.public import PublicMarketData
from shared.exchange.sdk import ExchangeSettings
from shared.exchange.wire import epoch_ms_to_datetime
from sim.bitvavo import BitvavoSimulator, SimulatorAdmin
from tests.integration.exchange.conftest import OPERATOR_ID, TRADE, sdk
from tests.support.trade_client import FullTradeClient

MINUTE = 60_000


def test_weights_add_up_to_1000_then_105_then_the_budget_returns(
    sim: BitvavoSimulator, admin: SimulatorAdmin, settings: ExchangeSettings
) -> None:
    start = admin.advance_to_next_minute(extra_ms=5)  # a fresh minute with ~60 s of room
    window_start = start - start % MINUTE
    client = sdk(sim, TRADE)
    for _ in range(39):  # /ticker/24h without a market weighs 25
        assert isinstance(client.ticker24h({}), list)
    assert client.rateLimitRemaining == 1000 - 39 * 25
    client.balance({})  # 5
    client.getOrders("BTC-EUR", {})  # 5
    client.trades("BTC-EUR", {})  # 5
    client.ordersOpen({"market": "BTC-EUR"})  # 1 with a market
    client.candles("BTC-EUR", "1m", {}, limit=1)  # 1
    client.book("BTC-EUR", {"depth": 1})  # 1
    client.publicTrades("BTC-EUR", {"limit": 1})  # 5
    assert client.rateLimitRemaining == 1000 - 975 - 23 == 2
    assert client.rateLimitReset == window_start + MINUTE
    client.tickerPrice({"market": "BTC-EUR"})
    client.time()
    assert client.rateLimitRemaining == 0

    refused = client.time()  # point 1001
    ban_end = window_start + 2 * MINUTE
    assert refused["errorCode"] == 105
    assert refused["error"].split(" at ")[1].split(".")[0] == str(ban_end)
    # the SDK parsed the ban time itself without raising
    assert client.rateLimitRemaining == 0
    assert client.rateLimitReset == ban_end

    trade_client = FullTradeClient(TRADE, operator_id=OPERATOR_ID, settings=settings)
    with pytest.raises(RateLimitedError) as caught:
        trade_client.balance("EUR")
    assert caught.value.code == 105
    assert caught.value.reset_at == epoch_ms_to_datetime(ban_end)
    assert trade_client.rate_limit is not None and trade_client.rate_limit.remaining == 0

    admin.advance_clock(ban_end - admin.now_ms() - 300)  # just before the end: still banned
    assert client.time()["errorCode"] == 105
    admin.advance_clock(300)
    assert "time" in client.time()
    assert client.rateLimitRemaining == 999
    assert trade_client.balance("EUR").available > 0


def test_the_ban_is_per_key(sim: BitvavoSimulator, admin: SimulatorAdmin, public: PublicMarketData) -> None:
    admin.exhaust_rate_limit(key=TRADE.key)
    assert sdk(sim, TRADE).time()["errorCode"] == 105
    assert public.ticker_price("BTC-EUR").market == "BTC-EUR"  # the IP's budget is untouched


def test_an_ip_without_key_is_banned_for_fifteen_minutes(admin: SimulatorAdmin, public: PublicMarketData) -> None:
    admin.exhaust_rate_limit(ip="127.0.0.1")
    before = epoch_ms_to_datetime(admin.now_ms())
    with pytest.raises(RateLimitedError) as caught:
        public.markets()
    assert caught.value.reset_at is not None
    assert caught.value.reset_at - before > timedelta(minutes=15)
    assert public.rate_limit is not None and public.rate_limit.remaining == 0


def test_resetat_is_always_a_future_minute_boundary(sim: BitvavoSimulator) -> None:
    for _ in range(3):
        answer = requests.get(sim.base_url + "/time", timeout=5)
        reset_at = int(answer.headers["bitvavo-ratelimit-resetat"])
        assert answer.headers["bitvavo-ratelimit-limit"] == "1000"
        assert reset_at % MINUTE == 0
        assert reset_at > time.time() * 1000
    error = requests.get(sim.base_url + "/BTC-EUR/candles", timeout=5)  # no interval: 203
    assert error.json()["errorCode"] == 203
    assert int(error.headers["bitvavo-ratelimit-resetat"]) > time.time() * 1000


def test_a_read_waits_out_a_short_ban_and_retries(sim: BitvavoSimulator, admin: SimulatorAdmin) -> None:
    waited: list[float] = []

    def sleep(seconds: float) -> None:  # instead of sleeping, move the exchange's clock
        waited.append(seconds)
        admin.advance_clock(int(seconds * 1000) + 1)

    settings = ExchangeSettings(rest_url=sim.base_url, read_attempts=2, max_rate_limit_wait_s=300)
    client = FullTradeClient(TRADE, operator_id=OPERATOR_ID, settings=settings, sleep=sleep)
    admin.exhaust_rate_limit(key=TRADE.key)
    assert client.balance("EUR").available > 0
    assert len(waited) == 1
    assert 0 < waited[0] <= 121  # until the ban's end, not a blind backoff
    no_wait = FullTradeClient(TRADE, operator_id=OPERATOR_ID, settings=ExchangeSettings(rest_url=sim.base_url))
    admin.exhaust_rate_limit(key=TRADE.key)
    with pytest.raises(RateLimitedError):
        no_wait.balance("EUR")


def test_fresh_rate_limits_lifts_a_ban_without_moving_the_clock(sim: BitvavoSimulator, admin: SimulatorAdmin) -> None:
    client = sdk(sim, TRADE)
    admin.exhaust_rate_limit(key=TRADE.key)
    assert client.time()["errorCode"] == 105  # banned
    before = admin.now_ms()
    admin.fresh_rate_limits()
    assert admin.now_ms() - before < MINUTE  # no jump: GET /time still agrees with the clients' offset
    assert all(u["used"] == 0 and u["bannedUntil"] <= before for u in admin.rate_limit_usage().values())
    assert "time" in client.time()  # the key works again, in the same minute
    assert client.rateLimitRemaining == 999
