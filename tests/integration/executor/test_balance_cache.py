"""A live execution in steady state spends at most 2 exchange weight: the free balance (GET
/balance, weight 5) is reused for EXECUTOR_BALANCE_CACHE_SECONDS (services/executor/balances.py),
and an order the exchange refuses for balance (216) ends FAILED — nothing was created, nothing is
sent again — and drops the cached balance, so the next execution reads it anew. Counted at the
simulator. (The storm across two processes: tests/stress/executor/test_balance_cache.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    executions,
    in_process_executor,
    running_exchange,
    seed_proposal,
    user,
    violation_types,
)

STEADY = 6  # executions measured once the caches are warm


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    with running_exchange(eur="1000") as ex:
        yield ex


@pytest.fixture
def ex(postgres: Postgres, exchange: Exchange) -> Iterator[Executor]:
    with in_process_executor(postgres, exchange.url, balance_cache_seconds="60") as executor:
        yield executor


def _buy(ex: Executor, postgres: Postgres, exchange: Exchange, uid: str) -> str:
    return seed_proposal(postgres, uid, amount="10.00", price=exchange.price("BTC-EUR"))


def _weight_used(exchange: Exchange) -> int:
    """Weight spent in the simulator's current rate-limit minute, every key and IP together."""
    return sum(identity["used"] for identity in exchange.admin.rate_limit_usage().values())


def test_a_live_execution_in_steady_state_spends_at_most_2_weight(
    postgres: Postgres, exchange: Exchange, ex: Executor
) -> None:
    uids = [user() for _ in range(STEADY + 1)]
    for uid in uids:
        ex.set_policy(uid)
    # warm-up: market rules, exchange clock and balance read once
    assert ex.execute(uids[0], _buy(ex, postgres, exchange, uids[0])).status == pb.EXECUTION_STATUS_FILLED
    proposals = [(uid, _buy(ex, postgres, exchange, uid)) for uid in uids[1:]]
    exchange.admin.advance_to_next_minute()
    balance_reads = exchange.admin.request_count("/balance")
    weight = _weight_used(exchange)

    for uid, pid in proposals:
        assert ex.execute(uid, pid).status == pb.EXECUTION_STATUS_FILLED

    assert exchange.admin.request_count("/balance") == balance_reads  # the cached balance served
    assert _weight_used(exchange) - weight <= 2 * STEADY  # POST /order 1 + the price guard's ticker 1


def test_an_order_refused_for_balance_fails_and_the_balance_is_read_again(
    postgres: Postgres, exchange: Exchange, ex: Executor
) -> None:
    uid = user()
    ex.set_policy(uid)
    assert ex.execute(uid, _buy(ex, postgres, exchange, uid)).status == pb.EXECUTION_STATUS_FILLED
    reads = exchange.admin.request_count("/balance")
    assert reads == 1
    # money leaves the account outside this system: the cached balance no longer holds
    exchange.admin.set_balance("EUR", "5")
    posts = exchange.post_count()

    second = _buy(ex, postgres, exchange, uid)
    refused_by_exchange = ex.execute(uid, second)

    assert refused_by_exchange.status == pb.EXECUTION_STATUS_FAILED  # never UNKNOWN: nothing was created
    assert exchange.post_count() == posts + 1  # sent once, never again
    assert exchange.admin.request_count("/balance") == reads  # it was checked against the cached one
    row = next(e for e in executions(postgres, uid) if e["proposal_id"] == second)
    assert row["error"]["code"] == "216"
    assert ex.reconcile(uid).changed == 0  # the reconciler has nothing to settle: it is final

    third = _buy(ex, postgres, exchange, uid)
    report = ex.refused(uid, third)

    assert report.code is grpc.StatusCode.FAILED_PRECONDITION
    assert violation_types(report) == ["INSUFFICIENT_BALANCE"]  # the balance was read again: 5 EUR
    assert exchange.admin.request_count("/balance") == reads + 1
    assert exchange.post_count() == posts + 1
