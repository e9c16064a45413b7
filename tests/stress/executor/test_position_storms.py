"""SELLs sell only the user's own coins: storms through two executor processes on one exchange
account, counted at the simulator (docs/design.md#sells-by-base-amount), and the books equal a
rebuild from the fills afterwards (docs/design.md#per-user-books).

The account holds far more of the base asset than any user bought (coins from before the
system), so the account-level balance check passes every SELL: only the per-user position check
can refuse one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from shared.errors import ErrorReport
from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    check_books,
    process_executor,
    running_exchange,
    seed_proposal,
    storm,
    user,
    violation_types,
)

pytestmark = pytest.mark.stress

MARKET = "BTC-EUR"


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    with running_exchange(eur="1000000") as ex:
        yield ex


@pytest.fixture(scope="module")
def pair(postgres: Postgres, exchange: Exchange, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Executor]]:
    logs = tmp_path_factory.mktemp("position-executors")
    with ExitStack() as stack:
        yield [
            stack.enter_context(process_executor(postgres, exchange.url, logs / f"executor-{i}.log"))[0]
            for i in range(2)
        ]


@pytest.fixture(autouse=True)
def plenty_of_coins_on_the_account(exchange: Exchange) -> None:
    """A fresh rate-limit minute, and 10 BTC on the account that no user bought."""
    exchange.admin.advance_to_next_minute()
    exchange.admin.set_balance("BTC", "10")


def buy(ex: Executor, postgres: Postgres, exchange: Exchange, uid: str, amount: str) -> pb.Execution:
    execution = ex.execute(uid, seed_proposal(postgres, uid, amount=amount, price=exchange.price(MARKET)))
    assert execution.status == pb.EXECUTION_STATUS_FILLED
    return execution


def sells_at_exchange(exchange: Exchange, client_order_ids: set[str]) -> list[dict[str, object]]:
    return [o for o in exchange.orders(MARKET) if o.get("clientOrderId") in client_order_ids and o["side"] == "sell"]


def test_only_the_holder_sells_on_a_shared_account(
    postgres: Postgres, exchange: Exchange, pair: list[Executor]
) -> None:
    holder, other = user(), user()
    for uid in (holder, other):
        pair[0].set_policy(uid)
    bought = buy(pair[0], postgres, exchange, holder, "40.00")
    price = exchange.price(MARKET)
    attempts = [(holder, seed_proposal(postgres, holder, side="sell", amount="10.00", price=price))]
    attempts += [(other, seed_proposal(postgres, other, side="sell", amount="10.00", price=price)) for _ in range(9)]
    before = exchange.post_count()

    results = storm([functools.partial(pair[i % 2].execute, uid, pid) for i, (uid, pid) in enumerate(attempts)])

    executed = [r for r in results if isinstance(r, pb.Execution)]
    refused = [r for r in results if isinstance(r, ErrorReport)]
    assert [e.user_id for e in executed] == [holder]
    assert executed[0].status == pb.EXECUTION_STATUS_FILLED
    assert len(refused) == 9
    assert all(r.code is grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert all(violation_types(r) == ["INSUFFICIENT_POSITION"] for r in refused)
    assert exchange.post_count() - before == 1
    sold = sells_at_exchange(exchange, {executed[0].client_order_id})
    assert len(sold) == 1
    # sent by base amount, never more than the holder bought
    assert Decimal(str(sold[0]["amount"])) <= Decimal(bought.filled_amount)
    assert "amountQuote" not in sold[0] or not sold[0]["amountQuote"]
    for uid in (holder, other):
        assert check_books(postgres, uid) == []


def test_one_user_sells_only_what_it_holds(postgres: Postgres, exchange: Exchange, pair: list[Executor]) -> None:
    uid = user()
    pair[0].set_policy(uid)
    bought = buy(pair[0], postgres, exchange, uid, "30.00")
    held = Decimal(bought.filled_amount)
    price = exchange.price(MARKET)
    proposals = [seed_proposal(postgres, uid, side="sell", amount="10.00", price=price) for _ in range(8)]
    before = exchange.post_count()

    results = storm([functools.partial(pair[i % 2].execute, uid, pid) for i, pid in enumerate(proposals)])

    executed = [r for r in results if isinstance(r, pb.Execution)]
    refused = [r for r in results if isinstance(r, ErrorReport)]
    assert 1 <= len(executed) <= 3
    assert len(executed) + len(refused) == 8
    assert all(violation_types(r) == ["INSUFFICIENT_POSITION"] for r in refused)
    assert exchange.post_count() - before == len(executed)
    sold = sells_at_exchange(exchange, {e.client_order_id for e in executed})
    assert len(sold) == len(executed)
    sold_base = sum((Decimal(str(o["filledAmount"])) for o in sold), Decimal(0))
    assert sold_base <= held  # only what it holds is sold
    # and as much of it as 10 EUR sells allow: one more would not have fitted
    one_sell = Decimal(str(sold[0]["amount"]))
    assert held - sold_base < one_sell * Decimal("1.01")
    assert check_books(postgres, uid) == []


def test_books_equal_a_rebuild_after_a_storm_of_buys_and_sells(
    postgres: Postgres, exchange: Exchange, pair: list[Executor]
) -> None:
    users = [user() for _ in range(3)]
    for uid in users:
        pair[0].set_policy(uid)
    for uid in users:
        buy(pair[0], postgres, exchange, uid, "60.00")
    attempts: list[tuple[str, str]] = []
    for uid in users:
        for side, amount in (
            ("buy", "25.00"),
            ("sell", "15.00"),
            ("sell", "20.00"),
            ("buy", "12.34"),
            ("sell", "9.99"),
        ):
            attempts.append((uid, seed_proposal(postgres, uid, side=side, amount=amount, price=exchange.price(MARKET))))

    results = storm([functools.partial(pair[i % 2].execute, uid, pid) for i, (uid, pid) in enumerate(attempts)])

    assert any(isinstance(r, pb.Execution) and r.side == pb.SIDE_SELL for r in results)
    for uid in users:
        assert check_books(postgres, uid) == []
    # the users' books together never hold more than the account does
    held = Decimal(0)
    for uid in users:
        [mine] = pair[0].operator.GetPositions(pb.GetPositionsRequest(user_id=uid)).users
        held += sum((Decimal(p.quantity) for p in mine.positions if p.market == MARKET), Decimal(0))
    assert Decimal(0) < held <= exchange.admin.available("BTC")
