"""Window edges through the whole service: an in-process executor, the database's clock frozen
and moved by the test (tests/support/database_clock.py), orders
counted at the exchange simulator.

The boundaries are the SQL's (repository.user_figures, oracle.account_notional), timed by the
claim time, which is the database clock's reading (the account cap is the database's, set through
UpdateAccountSettings):

* the UTC day is ``[00:00:00, next 00:00:00)``: a claim at 23:59:59 counts until midnight and
  not a microsecond after; a claim at 00:00:00 belongs to the new day;
* the hourly window is closed at both ends, ``claimed_at >= now - 60 min``: a claim exactly 60
  minutes old still counts, one 60 minutes and 1 ms old does not.

Each test has UTC days of its own (2036), so no other test's executions count in its windows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    account_cap,
    in_process_executor,
    seed_proposal,
    user,
    violation_types,
)
from tests.support.database_clock import DbClock


def refused_with(ex: Executor, exchange: Exchange, uid: str, pid: str, reason: str) -> None:
    before = exchange.post_count()
    report = ex.refused(uid, pid)
    assert report.code is grpc.StatusCode.FAILED_PRECONDITION
    assert violation_types(report) == [reason]
    assert exchange.post_count() == before


def filled(ex: Executor, uid: str, pid: str) -> None:
    assert ex.execute(uid, pid).status == pb.EXECUTION_STATUS_FILLED


def test_the_daily_cap_resets_at_utc_midnight(db_clock: DbClock, postgres: Postgres, exchange: Exchange) -> None:
    clock = db_clock(datetime(2036, 3, 9, 23, 59, 59, tzinfo=UTC))
    uid = user()
    with in_process_executor(postgres, exchange.url, clock=clock) as ex:
        ex.set_policy(uid, daily_trade_cap=1, hourly_trade_cap=10)
        price = exchange.price("BTC-EUR")
        filled(ex, uid, seed_proposal(postgres, uid, price=price, now=clock.now()))  # claimed 23:59:59
        second = seed_proposal(postgres, uid, price=price, now=clock.now())

        clock.set(datetime(2036, 3, 9, 23, 59, 59, 500000, tzinfo=UTC))
        refused_with(ex, exchange, uid, second, "DAILY_CAP_REACHED")

        clock.set(datetime(2036, 3, 10, 0, 0, 0, tzinfo=UTC))
        filled(ex, uid, second)  # a new UTC day; the refusal did not consume the proposal
        refused_with(ex, exchange, uid, seed_proposal(postgres, uid, price=price, now=clock.now()), "DAILY_CAP_REACHED")
    assert exchange.post_count() == 2


def test_the_hourly_window_is_the_last_60_minutes_inclusive(
    db_clock: DbClock, postgres: Postgres, exchange: Exchange
) -> None:
    start = datetime(2036, 3, 11, 10, 0, tzinfo=UTC)
    clock = db_clock(start)
    uid = user()
    with in_process_executor(postgres, exchange.url, clock=clock) as ex:
        ex.set_policy(uid, daily_trade_cap=10, hourly_trade_cap=1)
        price = exchange.price("BTC-EUR")
        filled(ex, uid, seed_proposal(postgres, uid, price=price, now=clock.now()))  # claimed at start
        second = seed_proposal(postgres, uid, price=price, now=clock.now(), expires_in=timedelta(hours=2))

        for later in (timedelta(minutes=59, seconds=59, milliseconds=999), timedelta(minutes=60)):
            clock.set(start + later)
            refused_with(ex, exchange, uid, second, "HOURLY_CAP_REACHED")

        clock.set(start + timedelta(minutes=60, milliseconds=1))
        filled(ex, uid, second)
    assert exchange.post_count() == 2


def test_the_account_notional_cap_resets_at_utc_midnight(
    db_clock: DbClock, postgres: Postgres, exchange: Exchange
) -> None:
    clock = db_clock(datetime(2036, 3, 12, 23, 59, 50, tzinfo=UTC))
    alice, bob, carol = user(), user(), user()
    with in_process_executor(postgres, exchange.url, clock=clock) as ex, account_cap(ex, "25"):
        for uid in (alice, bob, carol):
            ex.set_policy(uid)
        price = exchange.price("BTC-EUR")

        def proposal(uid: str) -> str:
            return seed_proposal(postgres, uid, price=price, now=clock.now())

        filled(ex, alice, proposal(alice))  # 10 EUR
        filled(ex, bob, proposal(bob))  # 20 EUR of 25 claimed on the account today
        late = proposal(carol)

        clock.set(datetime(2036, 3, 12, 23, 59, 59, 999999, tzinfo=UTC))
        refused_with(ex, exchange, carol, late, "ACCOUNT_NOTIONAL_CAP_REACHED")

        clock.set(datetime(2036, 3, 13, 0, 0, 0, tzinfo=UTC))
        filled(ex, carol, late)  # the new day's first 10 EUR (claimed at 00:00:00: it counts today)
        filled(ex, alice, proposal(alice))  # 20 EUR
        refused_with(ex, exchange, bob, proposal(bob), "ACCOUNT_NOTIONAL_CAP_REACHED")  # 30 > 25
    assert exchange.post_count() == 4
