"""Storms through two executor processes at once, counted at the exchange simulator.

Every storm releases its calls at the same moment (a barrier) from one thread each, alternating
between two executor processes with their own connection pools: the per-user lock and the unique
claim, not luck or a single process, are what keep the counts exact.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from shared.errors import ErrorReport
from tests.harness import Postgres, scrape
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    account_cap,
    process_executor,
    running_exchange,
    seed_proposal,
    storm,
    unpack_execution,
    user,
    violation_types,
)

pytestmark = pytest.mark.stress


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    with running_exchange(eur="1000000") as ex:
        yield ex


@contextmanager
def executor_pair(postgres: Postgres, exchange: Exchange, logs: Path, **overrides: str) -> Iterator[list[Executor]]:
    """Two executor processes on one database and one exchange account; ``overrides`` are
    settings by field name (kit.service_env), the same for both."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(process_executor(postgres, exchange.url, logs / f"executor-{i}.log", **overrides))[0]
            for i in range(2)
        ]


@pytest.fixture(scope="module")
def pair(postgres: Postgres, exchange: Exchange, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Executor]]:
    """Two executor processes on the session's database, default test settings."""
    with executor_pair(postgres, exchange, tmp_path_factory.mktemp("executors")) as executors:
        yield executors


@pytest.fixture(autouse=True)
def fresh_rate_limit_window(exchange: Exchange) -> None:
    """Each storm starts with a whole minute of exchange weight, as a quiet account would."""
    exchange.admin.advance_to_next_minute()


def fire(pair: list[Executor], uid: str, proposals: list[str]) -> list[Any]:
    """One ExecuteProposal per proposal, all at once, alternating between the two executors."""
    return fire_users(pair, [(uid, pid) for pid in proposals])


def fire_users(pair: list[Executor], attempts: list[tuple[str, str]]) -> list[Any]:
    """One ExecuteProposal per (user, proposal), all at once, alternating between the executors."""
    calls: list[Callable[[], Any]] = [
        functools.partial(pair[i % 2].execute, uid, pid) for i, (uid, pid) in enumerate(attempts)
    ]
    return storm(calls)


def executions(pair: list[Executor], outcome: str, reason: str) -> float:
    """oracle_executor_executions_total{outcome, reason} added up over both processes' /metrics."""
    name = "oracle_executor_executions_total"
    return sum(scrape(e.metrics_port).value(name, outcome=outcome, reason=reason) for e in pair if e.metrics_port)


def split(results: list[Any]) -> tuple[list[pb.Execution], list[ErrorReport]]:
    executed = [r for r in results if isinstance(r, pb.Execution)]
    refused = [r for r in results if isinstance(r, ErrorReport)]
    assert len(executed) + len(refused) == len(results), [r for r in results if r not in executed + refused]
    return executed, refused


def test_duplicate_storm_one_order(postgres: Postgres, exchange: Exchange, pair: list[Executor]) -> None:
    uid = user()
    pair[0].set_policy(uid)
    pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
    before = exchange.post_count()
    duplicates, claims = executions(pair, "duplicate", "EXECUTION_EXISTS"), executions(pair, "claimed", "CLAIMED")

    executed, refused = split(fire(pair, uid, [pid] * 50))

    assert len(executed) == 1
    assert executed[0].status == pb.EXECUTION_STATUS_FILLED
    assert len(refused) == 49
    assert {(r.code, r.reason) for r in refused} == {(grpc.StatusCode.ALREADY_EXISTS, "EXECUTION_EXISTS")}
    assert {unpack_execution(r).execution_id for r in refused} == {executed[0].execution_id}
    assert exchange.post_count() - before == 1
    mine = [o["orderId"] for o in exchange.orders() if o.get("clientOrderId") == executed[0].client_order_id]
    assert mine == [executed[0].exchange_order_id]

    again = pair[1].refused(uid, pid)
    assert (again.code, again.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EXECUTION_EXISTS")
    assert unpack_execution(again).status == pb.EXECUTION_STATUS_FILLED
    assert exchange.post_count() - before == 1
    # The operator's figure agrees with what the callers saw: every refusal counted, once.
    assert executions(pair, "duplicate", "EXECUTION_EXISTS") - duplicates == len(refused) + 1
    assert executions(pair, "claimed", "CLAIMED") - claims == 1


def test_cooldown_storm_one_order(postgres: Postgres, exchange: Exchange, pair: list[Executor]) -> None:
    uid = user()
    pair[0].set_policy(uid, cooldown=3600, daily_trade_cap=20, hourly_trade_cap=20)
    price = exchange.price("BTC-EUR")
    proposals = [seed_proposal(postgres, uid, price=price) for _ in range(20)]
    before = exchange.post_count()
    cooldowns = executions(pair, "rejected", "COOLDOWN_ACTIVE")

    executed, refused = split(fire(pair, uid, proposals))

    assert len(executed) == 1
    assert len(refused) == 19
    assert all(r.code is grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert all(violation_types(r) == ["COOLDOWN_ACTIVE"] for r in refused)
    assert exchange.post_count() - before == 1
    assert executions(pair, "rejected", "COOLDOWN_ACTIVE") - cooldowns == len(refused)


@pytest.mark.parametrize(
    ("caps", "reason"),
    [
        ({"daily_trade_cap": 100, "hourly_trade_cap": 5}, "HOURLY_CAP_REACHED"),
        ({"daily_trade_cap": 5, "hourly_trade_cap": 100}, "DAILY_CAP_REACHED"),
    ],
    ids=["hourly", "daily"],
)
def test_cap_storm_exactly_the_cap(
    postgres: Postgres, exchange: Exchange, pair: list[Executor], caps: dict[str, int], reason: str
) -> None:
    uid = user()
    pair[0].set_policy(uid, cooldown=0, **caps)
    price = exchange.price("BTC-EUR")
    proposals = [seed_proposal(postgres, uid, price=price) for _ in range(30)]
    before = exchange.post_count()

    executed, refused = split(fire(pair, uid, proposals))

    assert len(executed) == 5
    assert all(e.status == pb.EXECUTION_STATUS_FILLED for e in executed)
    assert len(refused) == 25
    assert all(violation_types(r) == [reason] for r in refused)
    assert exchange.post_count() - before == 5


# ---------------------------------------------------------------------- account-wide limits
#
# N users, one proposal each, at once through both processes: only the account settings row lock
# (repository.lock_account_for_claim, FOR UPDATE, taken by every claim) orders claims of *different*
# users, whose per-user locks do not meet. These run on a database of their own: the account's
# figures (today's claimed EUR, EUR in flight) must start at zero for the counts to be exact.

USERS = 10


def users_with_a_proposal(pair: list[Executor], postgres: Postgres, exchange: Exchange) -> list[tuple[str, str]]:
    price = exchange.price("BTC-EUR")
    attempts = []
    for _ in range(USERS):
        uid = user()
        pair[0].set_policy(uid)  # permissive: only the account-wide limit can refuse
        attempts.append((uid, seed_proposal(postgres, uid, amount="10.00", price=price)))
    return attempts


def test_account_notional_cap_storm_across_users(
    private_postgres: Postgres, exchange: Exchange, tmp_path: Path
) -> None:
    # The cap is set once, through one process: both enforce it (one row in the database).
    with executor_pair(private_postgres, exchange, tmp_path) as pair, account_cap(pair[0], "25"):
        attempts = users_with_a_proposal(pair, private_postgres, exchange)
        before = exchange.post_count()

        executed, refused = split(fire_users(pair, attempts))

    assert len(executed) == 2  # 10 + 10 <= 25 < 10 + 10 + 10
    assert all(e.status == pb.EXECUTION_STATUS_FILLED for e in executed)
    assert len({e.user_id for e in executed}) == 2
    assert len(refused) == USERS - 2
    assert all(r.code is grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert all(violation_types(r) == ["ACCOUNT_NOTIONAL_CAP_REACHED"] for r in refused)
    assert exchange.post_count() - before == 2


def test_account_balance_storm_across_users(private_postgres: Postgres, exchange: Exchange, tmp_path: Path) -> None:
    # Request timeout and access window well above the 1.5 s the exchange holds the orders below.
    with executor_pair(
        private_postgres, exchange, tmp_path, request_timeout_seconds="10", access_window_ms="5000"
    ) as pair:
        attempts = users_with_a_proposal(pair, private_postgres, exchange)
        exchange.admin.set_balance("EUR", "35")
        # The exchange holds the orders a while before handling them, so every attempt reads the
        # balance before any order spent from it (35 EUR): then only the EUR in flight, read under
        # the account row lock, decides — exactly 3 of 10 EUR fit. (An order handled before a
        # later attempt read the balance would be counted twice, conservatively: fewer orders.)
        exchange.admin.add_latency(1.5, path="/order", method="POST", count=USERS)
        before = exchange.post_count()
        try:
            executed, refused = split(fire_users(pair, attempts))
        finally:
            exchange.admin.clear_faults()
            exchange.admin.set_balance("EUR", "1000000")

    assert len(executed) == 3  # 3 x 10 <= 35 < 4 x 10
    assert all(e.status == pb.EXECUTION_STATUS_FILLED for e in executed)
    assert len(refused) == USERS - 3
    assert all(r.code is grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert all(violation_types(r) == ["INSUFFICIENT_BALANCE"] for r in refused)
    assert exchange.post_count() - before == 3
