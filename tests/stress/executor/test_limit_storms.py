"""Storms for the limits the other storms do not reach, through two executor processes at once,
counted at the exchange simulator: anti-flip (BUY and SELL on one market at once), the per-user
daily notional cap, and the global kill switch turned off in the middle of a storm.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
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
    user,
    violation_types,
)
from tests.support.database_clock import DbClock

pytestmark = pytest.mark.stress


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    with running_exchange(eur="1000000") as ex:
        ex.admin.set_balance("BTC", "1000")  # SELLs have something to sell
        yield ex


@pytest.fixture(scope="module")
def pair(postgres: Postgres, exchange: Exchange, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Executor]]:
    logs = tmp_path_factory.mktemp("limit-storms")
    with ExitStack() as stack:
        yield [
            stack.enter_context(process_executor(postgres, exchange.url, logs / f"executor-{i}.log"))[0]
            for i in range(2)
        ]


@pytest.fixture(autouse=True)
def fresh_rate_limit_window(exchange: Exchange) -> None:
    exchange.admin.advance_to_next_minute()


def split(results: list[Any]) -> tuple[list[pb.Execution], list[ErrorReport]]:
    executed = [r for r in results if isinstance(r, pb.Execution)]
    refused = [r for r in results if isinstance(r, ErrorReport)]
    assert len(executed) + len(refused) == len(results), [r for r in results if r not in executed + refused]
    return executed, refused


def give_position(postgres: Postgres, executor: Executor, uid: str, price: Decimal, amount: str) -> None:
    """A BUY that fills, so the user's SELLs pass the position check (a user sells only what it
    holds): the storms below then fail only on anti-flip."""
    pid = seed_proposal(postgres, uid, side="buy", amount=amount, price=price)
    assert executor.execute(uid, pid).status == pb.EXECUTION_STATUS_FILLED


def past_every_window(db_clock: DbClock) -> None:
    """The database's clock (every replica's) two hours on: the positions' BUYs are outside the
    anti-flip window, so the storm's BUY and SELL race for the market from a clean slate."""
    db_clock(None).advance(timedelta(hours=2))


def test_anti_flip_storm_one_order_per_user(
    postgres: Postgres, exchange: Exchange, pair: list[Executor], db_clock: DbClock
) -> None:
    # No cooldown: only anti-flip stands between a user's BUY and SELL on one market.
    price = exchange.price("BTC-EUR")
    users = [user() for _ in range(8)]
    for uid in users:
        pair[0].set_policy(uid, cooldown=0, anti_flip_window=0)
        give_position(postgres, pair[0], uid, price, "30.00")
        pair[0].set_policy(uid, cooldown=0, anti_flip_window=3600)
    past_every_window(db_clock)
    price = exchange.price("BTC-EUR")
    attempts = [
        (uid, seed_proposal(postgres, uid, side=side, price=price)) for uid in users for side in ("buy", "sell")
    ]
    before = exchange.post_count()

    executed, refused = split(
        storm([functools.partial(pair[i % 2].execute, uid, pid) for i, (uid, pid) in enumerate(attempts)])
    )

    assert len(executed) == 8
    assert sorted(e.user_id for e in executed) == sorted(users)
    assert all(e.status == pb.EXECUTION_STATUS_FILLED for e in executed)
    assert len(refused) == 8
    assert all(r.code is grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert all(violation_types(r) == ["ANTI_FLIP_ACTIVE"] for r in refused)
    assert exchange.post_count() - before == 8


def test_one_side_of_a_market_only_in_an_anti_flip_storm(
    postgres: Postgres, exchange: Exchange, pair: list[Executor], db_clock: DbClock
) -> None:
    uid = user()
    pair[0].set_policy(uid, cooldown=0, anti_flip_window=0)
    price = exchange.price("BTC-EUR")
    for _ in range(4):  # 4 x 30 EUR of BTC: six 10 EUR SELLs fit whatever the price does meanwhile
        give_position(postgres, pair[0], uid, price, "30.00")
    pair[0].set_policy(uid, cooldown=0, anti_flip_window=3600)
    past_every_window(db_clock)
    price = exchange.price("BTC-EUR")
    proposals = [seed_proposal(postgres, uid, side=side, price=price) for side in ("buy", "sell") * 6]
    before = exchange.post_count()

    executed, refused = split(
        storm([functools.partial(pair[i % 2].execute, uid, pid) for i, pid in enumerate(proposals)])
    )

    assert len({e.side for e in executed}) == 1  # whichever side claimed first, the other never trades
    assert len(executed) == 6
    assert all(violation_types(r) == ["ANTI_FLIP_ACTIVE"] for r in refused)
    assert exchange.post_count() - before == 6


def test_daily_notional_storm_exactly_what_fits(postgres: Postgres, exchange: Exchange, pair: list[Executor]) -> None:
    uid = user()
    pair[0].set_policy(uid, cooldown=0, daily_notional_cap_eur="25")
    price = exchange.price("BTC-EUR")
    proposals = [seed_proposal(postgres, uid, amount="10.00", price=price) for _ in range(20)]
    before = exchange.post_count()

    executed, refused = split(
        storm([functools.partial(pair[i % 2].execute, uid, pid) for i, pid in enumerate(proposals)])
    )

    assert len(executed) == 2  # 10 + 10 <= 25 < 10 + 10 + 10
    assert all(e.status == pb.EXECUTION_STATUS_FILLED for e in executed)
    assert len(refused) == 18
    assert all(violation_types(r) == ["DAILY_NOTIONAL_CAP_REACHED"] for r in refused)
    assert exchange.post_count() - before == 2


THREADS = 6
CALLS_AFTER_THE_SWITCH = 2  # per thread


def test_kill_switch_in_the_middle_of_a_storm(
    postgres: Postgres, exchange: Exchange, pair: list[Executor], tmp_path: Path
) -> None:
    """Threads keep executing fresh proposals through three processes; once orders are arriving
    at the exchange — and the third process holds executions whose market data it fetched, right
    before their claim's transaction (test-only hook) — the global kill switch goes off. Its RPC
    returns after its transaction committed; from then on no execution may reach SUBMITTING (the
    switch holds the account lock exclusively; a claim reads the switch under that lock shared and
    writes SUBMITTING before releasing it), so the set of executions SUBMITTING or beyond read
    right after the RPC is final, and the exchange must hold orders of those executions only. The
    order of events is proven by what each call saw and what the exchange counted, never by
    sleeping."""
    users = [user() for _ in range(THREADS)]
    for uid in users:
        pair[0].set_policy(uid, cooldown=0)
    price = exchange.price("BTC-EUR")
    release = tmp_path / "release"
    switched = threading.Event()
    results_after: list[Any] = []
    lock = threading.Lock()

    with process_executor(postgres, exchange.url, tmp_path / "held.log", hold_before_claim_until=str(release)) as (
        held,
        _,
    ):
        executors = [pair[0], pair[1], held]
        held_users = [users[i] for i in range(THREADS) if i % 3 == 2]

        def keep_executing(i: int) -> None:
            uid, executor = users[i], executors[i % 3]
            after = 0
            while after < CALLS_AFTER_THE_SWITCH:
                was_switched = switched.is_set()  # read before the call: the call started after it
                pid = seed_proposal(postgres, uid, price=price)
                try:
                    outcome: Any = executor.execute(uid, pid)
                except grpc.RpcError as exc:
                    outcome = exc
                if was_switched:
                    after += 1
                    with lock:
                        results_after.append(outcome)

        def held_proposals() -> list[str]:  # the proposals the third process holds before their claim
            return [p.name.removeprefix("held-") for p in tmp_path.glob("held-*")]

        threads = [threading.Thread(target=keep_executing, args=(i,)) for i in range(THREADS)]
        before = exchange.post_count()
        try:
            for t in threads:
                t.start()
            _wait_for(lambda: exchange.post_count() >= before + THREADS)  # orders are arriving: mid-storm
            _wait_for(lambda: len(held_proposals()) == len(held_users))  # and some are about to be claimed
            held_across = held_proposals()  # one per held thread, until the release
            pair[1].kill_switch(enabled=False)  # returns once the switch's transaction committed
            switched.set()
            with postgres.admin() as conn:
                rows = conn.execute(
                    "SELECT client_order_id::text FROM oracle.trade_executions"
                    " WHERE user_id = ANY(%s) AND submitting_at IS NOT NULL",
                    (users,),
                ).fetchall()
            submitting = {r[0] for r in rows}
            release.touch()
            for t in threads:
                t.join(120)
        finally:
            release.touch()
            pair[0].kill_switch(enabled=True)

    assert submitting, "the switch went off before any execution was SUBMITTING: not mid-storm"
    with postgres.admin() as conn:
        rows = conn.execute(
            "SELECT client_order_id::text, status, submitting_at IS NOT NULL, user_id FROM oracle.trade_executions"
            " WHERE user_id = ANY(%s)",
            (users,),
        ).fetchall()
    ours = {r[0] for r in rows}
    sent = {o.get("clientOrderId") for o in exchange.orders()} & ours
    assert sent <= submitting  # no order of an execution that was not yet SUBMITTING at the switch
    assert sent == submitting  # and every SUBMITTING one was sent, once
    assert {r[0] for r in rows if r[2]} == submitting  # nothing reached SUBMITTING afterwards
    # the executions held before their claim across the switch were refused: nothing claimed
    with postgres.admin() as conn:
        claimed_held = conn.execute(
            "SELECT count(*) FROM oracle.trade_executions WHERE proposal_id = ANY(%s::uuid[])", (held_across,)
        ).fetchone()
    assert len(held_across) == len(held_users) and claimed_held == (0,)
    # every call made after the switch committed was refused, nothing claimed or sent for it
    assert len(results_after) == THREADS * CALLS_AFTER_THE_SWITCH
    assert all(isinstance(r, grpc.RpcError) for r in results_after), results_after
    assert {r.code() for r in results_after} == {grpc.StatusCode.FAILED_PRECONDITION}


def _wait_for(condition: Any, timeout: float = 120) -> None:
    """Wait on an event the test cannot be told of directly (polling it, never a fixed sleep)."""
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not condition():
            if done.wait(0.01):
                raise AssertionError("timed out waiting for the storm")
    finally:
        deadline.cancel()
