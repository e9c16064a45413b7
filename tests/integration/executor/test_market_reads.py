"""What the executor reads from the public market data, and how often — counted at the simulator:

* live mode asks for a fresh price every time (the price guard decides on it);
* paper mode reuses a price for at most ``EXECUTOR_PAPER_PRICE_MAX_AGE_SECONDS`` (1 s);
* the market list is reused within ``EXECUTOR_MARKET_CACHE_SECONDS``, and dropped at once when
  the exchange refuses an order with a code that says the market's rules are not what was checked
  (shared/exchange/errors.py, ``MARKET_RULES_CODES``): the next check reads the rules afresh.

Venues are built as the service builds them (``services.executor.app.create_venue``) against a
real simulator; where an age is decided, a manual monotonic clock stands in for time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from services.executor.app import create_venue, exchange_settings
from services.executor.config import load_settings
from services.executor.model import Side
from services.executor.paper import PaperVenue
from services.executor.venue import Markets, Venue
from shared.clock import SystemClock
from shared.db import Database
from shared.exchange.errors import MARKET_RULES_CODES, OrderRejectedError
from shared.exchange.market import Market
from shared.exchange.public import PublicMarketData
from shared.exchange.sdk import ExchangeSettings
from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    in_process_executor,
    seed_proposal,
    service_env,
    user,
    violation_types,
)

TICKER = "/ticker/price"
MARKETS = "/markets"


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def venue(postgres: Postgres, exchange: Exchange, *, mode: str = "live", **overrides: str) -> Iterator[Venue]:
    """The venue ``python -m services.executor`` builds for these settings."""
    settings = load_settings(service_env(postgres, exchange.url, mode=mode, **overrides))
    db = Database(postgres.url("executor"), name="market-reads-test", min_size=1, max_size=1)
    db.open()
    try:
        yield create_venue(settings, db, SystemClock())
    finally:
        db.close()


def requests_to(exchange: Exchange, path: str) -> int:
    return exchange.admin.request_count(path)


def test_live_asks_for_a_fresh_price_every_time(postgres: Postgres, exchange: Exchange) -> None:
    with venue(postgres, exchange) as live:
        before = requests_to(exchange, TICKER)
        first = live.price("BTC-EUR")
        exchange.admin.set_price("BTC-EUR", first * 2)
        assert live.price("BTC-EUR") == first * 2
        live.price("BTC-EUR")
        assert requests_to(exchange, TICKER) - before == 3


def test_paper_reuses_a_price_for_at_most_its_max_age(postgres: Postgres, exchange: Exchange) -> None:
    settings = load_settings(service_env(postgres, exchange.url, mode="paper"))
    clock = Monotonic()
    paper = PaperVenue(
        Markets(PublicMarketData(exchange_settings(settings)), settings.market_cache_seconds),
        Database(postgres.url("executor"), name="unused"),  # prices never touch the database
        SystemClock(),
        balance_eur=Decimal(1000),
        fee_rate=Decimal(0),
        price_max_age_seconds=settings.paper_price_max_age_seconds,
        monotonic=clock,
    )
    assert settings.paper_price_max_age_seconds == 1.0

    before = requests_to(exchange, TICKER)
    first = paper.price("BTC-EUR")
    exchange.admin.set_price("BTC-EUR", first * 2)
    for _ in range(9):
        clock.now += 0.1  # 0.9 s after it was asked for: still the same price
        assert paper.price("BTC-EUR") == first
    assert requests_to(exchange, TICKER) - before == 1

    clock.now += 0.1  # a second old: asked for again
    assert paper.price("BTC-EUR") == first * 2
    assert requests_to(exchange, TICKER) - before == 2
    assert paper.price("ETH-EUR") > 0  # each market its own
    assert requests_to(exchange, TICKER) - before == 3


def test_paper_with_max_age_zero_asks_every_time(postgres: Postgres, exchange: Exchange) -> None:
    with venue(postgres, exchange, mode="paper", paper_price_max_age_seconds="0") as paper:
        before = requests_to(exchange, TICKER)
        for _ in range(3):
            paper.price("BTC-EUR")
        assert requests_to(exchange, TICKER) - before == 3


def public_settings(exchange: Exchange) -> ExchangeSettings:
    return exchange_settings(load_settings({"EXECUTOR_MODE": "paper", "EXECUTOR_EXCHANGE_URL": exchange.url}))


class HeldMarketList(PublicMarketData):
    """The real public client, whose first market-list request waits until the test lets it go."""

    def __init__(self, settings: ExchangeSettings) -> None:
        super().__init__(settings)
        self.asked = threading.Event()
        self.go = threading.Event()

    def markets(self) -> tuple[Market, ...]:
        self.asked.set()
        self.go.wait()
        return super().markets()


def test_the_market_list_is_read_again_when_its_time_is_up(exchange: Exchange) -> None:
    clock = Monotonic()
    markets = Markets(PublicMarketData(public_settings(exchange)), 60, clock=clock)
    before = requests_to(exchange, MARKETS)
    for _ in range(3):
        assert markets.info("BTC-EUR") is not None
        clock.now += 20
    assert requests_to(exchange, MARKETS) - before == 1
    clock.now += 0.001  # 60.001 s after it was asked for
    assert markets.info("BTC-EUR") is not None
    assert requests_to(exchange, MARKETS) - before == 2


def test_a_list_asked_for_before_an_invalidation_is_not_kept(exchange: Exchange) -> None:
    """The refusal that drops the list may come while another thread's request for it is on its
    way: that answer may predate the change, so it serves its own caller and is not kept."""
    public = HeldMarketList(public_settings(exchange))
    markets = Markets(public, 3600)
    before = requests_to(exchange, MARKETS)
    reader = threading.Thread(target=markets.names)
    reader.start()
    assert public.asked.wait(timeout=60)
    markets.invalidate()
    public.go.set()
    reader.join()
    assert requests_to(exchange, MARKETS) - before == 1

    markets.names()
    assert requests_to(exchange, MARKETS) - before == 2  # asked again
    markets.names()
    assert requests_to(exchange, MARKETS) - before == 2  # and that one is kept


def _place(live: Venue, *, amount_quote: str = "10") -> None:
    live.place(
        market="BTC-EUR",
        side=Side.BUY,
        amount_quote=Decimal(amount_quote),
        client_order_id=str(uuid.uuid4()),
        sign_by_ms=live.exchange_now_ms() + 60_000,
    )


@pytest.mark.parametrize("code", sorted(MARKET_RULES_CODES))
def test_a_refusal_for_market_rules_drops_the_market_list(postgres: Postgres, exchange: Exchange, code: int) -> None:
    with venue(postgres, exchange, market_cache_seconds="3600") as live:
        live.market("BTC-EUR")
        before = requests_to(exchange, MARKETS)
        for _ in range(3):
            live.market("BTC-EUR")
        assert requests_to(exchange, MARKETS) == before  # within its time: no request

        exchange.admin.fail_next_order(code, place=False)
        with pytest.raises(OrderRejectedError) as refused:
            _place(live)
        assert refused.value.code == code  # the refusal itself goes on unchanged
        assert live.market("BTC-EUR") is not None
        assert requests_to(exchange, MARKETS) - before == 1
        live.market("BTC-EUR")
        assert requests_to(exchange, MARKETS) - before == 1  # read once, then reused again


@pytest.mark.parametrize("code", [203, 205, 216])
def test_other_refusals_keep_the_market_list(postgres: Postgres, exchange: Exchange, code: int) -> None:
    with venue(postgres, exchange, market_cache_seconds="3600") as live:
        live.market("BTC-EUR")
        before = requests_to(exchange, MARKETS)
        exchange.admin.fail_next_order(code, place=False)
        with pytest.raises(OrderRejectedError):
            _place(live)
        live.market("BTC-EUR")
        assert requests_to(exchange, MARKETS) == before


def test_a_market_halted_since_its_rules_were_read_is_refused_locally_after_the_first_refusal(
    postgres: Postgres, exchange: Exchange
) -> None:
    """The list said "trading"; the exchange halts the market; the next order is refused there
    (423, the execution FAILED as before) — and the one after is refused by our own market-status
    check, without sending anything, because that refusal made the executor read the rules again."""
    uid = user()
    with in_process_executor(postgres, exchange.url, market_cache_seconds="3600") as ex:
        ex.set_policy(uid)
        price = exchange.price("BTC-EUR")
        assert ex.execute(uid, seed_proposal(postgres, uid, price=price)).status == pb.EXECUTION_STATUS_FILLED
        lists_read = requests_to(exchange, MARKETS)

        exchange.admin.halt_market("BTC-EUR")
        failed = ex.execute(uid, seed_proposal(postgres, uid, price=price))
        assert failed.status == pb.EXECUTION_STATUS_FAILED
        assert exchange.post_count() == 2
        assert requests_to(exchange, MARKETS) == lists_read  # nothing read until it is needed

        report = ex.refused(uid, seed_proposal(postgres, uid, price=price))
        assert report.code is grpc.StatusCode.FAILED_PRECONDITION
        assert violation_types(report) == ["MARKET_NOT_TRADING"]
        assert exchange.post_count() == 2  # nothing sent
        assert requests_to(exchange, MARKETS) - lists_read == 1
