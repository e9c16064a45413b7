"""Storms through two executor processes at once, counted at the exchange simulator.

Every storm releases its calls at the same moment (a barrier) from one thread each, alternating
between two executor processes with their own connection pools: the per-user lock and the unique
claim, not luck or a single process, are what keep the counts exact.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from shared.errors import ErrorReport
from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
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


@pytest.fixture(scope="module")
def pair(postgres: Postgres, exchange: Exchange, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Executor]]:
    """Two executor processes on one database and one exchange account."""
    logs = tmp_path_factory.mktemp("executors")
    with ExitStack() as stack:
        yield [
            stack.enter_context(process_executor(postgres, exchange.url, logs / f"executor-{i}.log"))[0]
            for i in range(2)
        ]


@pytest.fixture(autouse=True)
def fresh_rate_limit_window(exchange: Exchange) -> None:
    """Each storm starts with a whole minute of exchange weight, as a quiet account would."""
    exchange.admin.advance_to_next_minute()


def fire(pair: list[Executor], uid: str, proposals: list[str]) -> list[Any]:
    """One ExecuteProposal per proposal, all at once, alternating between the two executors."""
    calls: list[Callable[[], Any]] = [
        functools.partial(pair[i % 2].execute, uid, pid) for i, pid in enumerate(proposals)
    ]
    return storm(calls)


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

    executed, refused = split(fire(pair, uid, [pid] * 50))

    assert len(executed) == 1
    assert executed[0].status == pb.EXECUTION_STATUS_FILLED
    assert len(refused) == 49
    assert {(r.code, r.reason) for r in refused} == {(grpc.StatusCode.ALREADY_EXISTS, "EXECUTION_EXISTS")}
    assert {unpack_execution(r).execution_id for r in refused} == {executed[0].execution_id}
    assert exchange.post_count() - before == 1
    assert len(exchange.admin.orders()) >= 1
    assert [o for o in exchange.orders() if o.get("clientOrderId") == executed[0].client_order_id] != []

    again = pair[1].refused(uid, pid)
    assert (again.code, again.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EXECUTION_EXISTS")
    assert unpack_execution(again).status == pb.EXECUTION_STATUS_FILLED
    assert exchange.post_count() - before == 1


def test_cooldown_storm_one_order(postgres: Postgres, exchange: Exchange, pair: list[Executor]) -> None:
    uid = user()
    pair[0].set_policy(uid, cooldown=3600, daily_trade_cap=20, hourly_trade_cap=20)
    price = exchange.price("BTC-EUR")
    proposals = [seed_proposal(postgres, uid, price=price) for _ in range(20)]
    before = exchange.post_count()

    executed, refused = split(fire(pair, uid, proposals))

    assert len(executed) == 1
    assert len(refused) == 19
    assert all(r.code is grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert all(violation_types(r) == ["COOLDOWN_ACTIVE"] for r in refused)
    assert exchange.post_count() - before == 1


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
