"""Storms through two executor processes whose own clocks are 10 minutes apart (one 5 minutes
ahead of the machine, one 5 minutes behind), counted at the exchange simulator.

Every window is decided on the database's clock (docs/design.md#one-clock-per-decision), so the
counts are exactly those of the unskewed storms (test_storms.py). Were a replica's own clock to
stamp claims and place windows, the one running behind would stamp its claims 5 minutes early
and the one running ahead would see them 10 minutes old: a cooldown or an hour shorter by that
much. The skew is given to each process through the test-only entry point
(tests/support/executor_with_hooks.py --clock-skew-seconds); production reads no such setting.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    process_executor,
    running_exchange,
    seed_proposal,
    storm,
    user,
    violation_types,
)
from tests.support.database_clock import shift_database_clock

pytestmark = pytest.mark.stress

SKEW_SECONDS = 300


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    with running_exchange(eur="1000000") as ex:
        yield ex


@pytest.fixture(scope="module")
def skewed(
    postgres: Postgres, exchange: Exchange, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Executor]]:
    """[ahead, behind]: two executor processes, their own clocks +5 and -5 minutes off."""
    logs = tmp_path_factory.mktemp("skewed")
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                process_executor(postgres, exchange.url, logs / f"executor{skew:+d}.log", clock_skew_seconds=str(skew))
            )[0]
            for skew in (SKEW_SECONDS, -SKEW_SECONDS)
        ]


@pytest.fixture(autouse=True)
def fresh_rate_limit_window(exchange: Exchange) -> None:
    exchange.admin.advance_to_next_minute()


def fire(pair: list[Executor], uid: str, proposals: list[str]) -> tuple[list[pb.Execution], list[object]]:
    results = storm([functools.partial(pair[i % 2].execute, uid, pid) for i, pid in enumerate(proposals)])
    executed = [r for r in results if isinstance(r, pb.Execution)]
    return executed, [r for r in results if not isinstance(r, pb.Execution)]


def seed_counting_claims(postgres: Postgres, uid: str, count: int, *, minutes_ago: int) -> None:
    """``count`` filled executions claimed ``minutes_ago`` on the database's clock."""
    with postgres.admin() as conn:
        for _ in range(count):
            pid = seed_proposal(postgres, uid, price="100")
            conn.execute(
                "INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,"
                " amount_quote, status, client_order_id, principal, preflight, claimed_at, updated_at)"
                " SELECT %s, %s, %s, 'live', 'BTC-EUR', 'buy', 10, 'FILLED', %s, 'operator', '{}',"
                " t.now - make_interval(mins => %s), t.now FROM (SELECT oracle.clock() AS now) t",
                (str(uuid.uuid4()), uid, pid, str(uuid.uuid4()), minutes_ago),
            )


def test_cooldown_storm_through_skewed_replicas_one_order(
    postgres: Postgres, exchange: Exchange, skewed: list[Executor]
) -> None:
    ahead, behind = skewed
    uid = user()
    ahead.set_policy(uid, cooldown=SKEW_SECONDS, daily_trade_cap=30, hourly_trade_cap=30)
    price = exchange.price("BTC-EUR")
    before = exchange.post_count()

    # The first order through the replica running behind (a claim it would stamp 5 minutes early)...
    assert behind.execute(uid, seed_proposal(postgres, uid, price=price)).status == pb.EXECUTION_STATUS_FILLED
    # ... then a storm through both: the cooldown (5 minutes) refuses every one of them.
    executed, refused = fire(skewed, uid, [seed_proposal(postgres, uid, price=price) for _ in range(20)])

    assert executed == []
    assert len(refused) == 20
    assert all(getattr(r, "code", None) is grpc.StatusCode.FAILED_PRECONDITION for r in refused), refused
    assert all(violation_types(r) == ["COOLDOWN_ACTIVE"] for r in refused)  # type: ignore[arg-type]
    assert exchange.post_count() - before == 1


def test_hourly_cap_storm_through_skewed_replicas_exactly_the_cap(
    postgres: Postgres, exchange: Exchange, skewed: list[Executor]
) -> None:
    uid = user()
    skewed[0].set_policy(uid, cooldown=0, daily_trade_cap=100, hourly_trade_cap=5)
    # 3 of the hour's 5 trades were claimed 57 minutes ago: inside the hour on the database's
    # clock, outside it for a replica running 5 minutes ahead.
    seed_counting_claims(postgres, uid, 3, minutes_ago=57)
    price = exchange.price("BTC-EUR")
    before = exchange.post_count()

    executed, refused = fire(skewed, uid, [seed_proposal(postgres, uid, price=price) for _ in range(30)])

    assert len(executed) == 2
    assert all(e.status == pb.EXECUTION_STATUS_FILLED for e in executed)
    assert len(refused) == 28
    assert all(violation_types(r) == ["HOURLY_CAP_REACHED"] for r in refused)  # type: ignore[arg-type]
    assert exchange.post_count() - before == 2


def test_daily_cap_storm_across_midnight_through_skewed_replicas(
    postgres: Postgres, exchange: Exchange, tmp_path: Path
) -> None:
    """The notional UTC day is the database's: its clock is put 2 minutes before a midnight, one
    replica's own clock 5 minutes after that (the next day), the other's 5 minutes before. Three
    of the day's five trades were claimed 8 minutes ago: the storm gets exactly the two left."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    offset = midnight - timedelta(minutes=2) - now
    skews = [offset.total_seconds() + SKEW_SECONDS, offset.total_seconds() - SKEW_SECONDS]
    uid = user()
    shift_database_clock(postgres.admin_url, offset)
    try:
        with ExitStack() as stack:
            pair = [
                stack.enter_context(
                    process_executor(postgres, exchange.url, tmp_path / f"executor-{i}.log", clock_skew_seconds=str(s))
                )[0]
                for i, s in enumerate(skews)
            ]
            pair[0].set_policy(uid, cooldown=0, daily_trade_cap=5, hourly_trade_cap=100)
            seed_counting_claims(postgres, uid, 3, minutes_ago=8)
            price = exchange.price("BTC-EUR")
            before = exchange.post_count()

            executed, refused = fire(pair, uid, [seed_proposal(postgres, uid, price=price) for _ in range(30)])
    finally:
        shift_database_clock(postgres.admin_url, timedelta(0))

    assert len(executed) == 2
    assert all(e.status == pb.EXECUTION_STATUS_FILLED for e in executed)
    assert all(violation_types(r) == ["DAILY_CAP_REACHED"] for r in refused)  # type: ignore[arg-type]
    assert len(refused) == 28
    assert exchange.post_count() - before == 2
