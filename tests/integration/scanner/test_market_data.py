"""Market data is read once per market per cycle, and the exchange's weight budget is respected.

Counts are taken at the exchange simulator (its admin API), never from the scanner.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.clock import ManualClock
from tests.harness import Postgres, new_user_id
from tests.integration.scanner.kit import (
    MARKETS,
    Exchange,
    assembled,
    insert_due_job,
    rows,
    scan_runs,
    seed_policy,
)


def test_fifty_users_five_markets_one_cycle_one_request_per_market(
    private_postgres: Postgres, exchange: Exchange
) -> None:
    pg = private_postgres
    clock = ManualClock(datetime.now(UTC))
    for _ in range(50):
        user = new_user_id("md")
        seed_policy(pg, user)
        insert_due_job(pg, user, MARKETS, due=clock.now())
    with assembled(pg, exchange.url, clock, claim_batch_size="50", job_concurrency="4") as scanner:
        assert scanner.scheduler.run_once() == 50

    assert len(scan_runs(pg)) == 50, "every job of the cycle ran"
    assert exchange.count("/ticker/24h") == len(MARKETS)
    assert exchange.count("/{market}/candles") == len(MARKETS)
    for market in MARKETS:
        assert exchange.count(f"/{market}/candles") == 1, market
    assert exchange.count("/markets") == 1
    stats = exchange.admin.stats()["requests"]
    assert sum(stats.values()) == 2 * len(MARKETS) + 1, stats


def test_a_rate_limit_ban_stops_every_request_until_it_ends(private_postgres: Postgres, exchange: Exchange) -> None:
    pg = private_postgres
    clock = ManualClock(datetime.now(UTC))
    user = new_user_id("banned")
    seed_policy(pg, user)
    job_id = insert_due_job(pg, user, ["BTC-EUR", "ETH-EUR"], due=clock.now())
    exchange.admin.exhaust_rate_limit(ip="127.0.0.1")  # the next request gets 105 and a ban
    with assembled(pg, exchange.url, clock) as scanner:
        scanner.scheduler.run_once()
        (job,) = rows(pg, "SELECT * FROM oracle.scan_jobs WHERE job_id = %s", job_id)
        assert job["attempts"] == 1
        assert job["last_error"].startswith("RATE_LIMITED")
        assert job["locked_by"] is None
        # an IP ban lasts 15 minutes past the current one: the job waits for it, not for the back-off
        assert job["next_run_at"] > clock.now() + timedelta(minutes=14)
        sent = sum(exchange.admin.stats()["requests"].values())
        assert sent == 1, "after the 105 nothing else may be sent"

        with pg.admin() as conn:  # due again while the ban lasts
            conn.execute("UPDATE oracle.scan_jobs SET next_run_at = %s WHERE job_id = %s", (clock.now(), job_id))
        scanner.scheduler.run_once()
        assert sum(exchange.admin.stats()["requests"].values()) == sent, "a request went out during the ban"
        (job,) = rows(pg, "SELECT * FROM oracle.scan_jobs WHERE job_id = %s", job_id)
        assert job["attempts"] == 2
    failures = scan_runs(pg, "scan.failed")
    assert [f["attempts"] for f in failures] == [1, 2]


def test_the_weight_reserve_is_kept(private_postgres: Postgres, exchange: Exchange) -> None:
    pg = private_postgres
    clock = ManualClock(datetime.now(UTC))
    user = new_user_id("reserve")
    seed_policy(pg, user)
    job_id = insert_due_job(pg, user, ["BTC-EUR"], due=clock.now())
    # The first answer says 999 points are left; keeping 998 leaves no room for a market's 2.
    with assembled(pg, exchange.url, clock, rate_limit_reserve="998") as scanner:
        scanner.scheduler.run_once()
    assert exchange.admin.stats()["requests"] == {"GET /markets": 1}
    (job,) = rows(pg, "SELECT * FROM oracle.scan_jobs WHERE job_id = %s", job_id)
    assert job["last_error"].startswith("RATE_LIMITED")
    assert job["attempts"] == 1
