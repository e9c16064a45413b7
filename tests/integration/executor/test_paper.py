"""Paper mode: every validator, the claim and the state machine as live, and no order sent."""

from __future__ import annotations

import functools
from decimal import Decimal

import grpc
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    executions,
    fills,
    in_process_executor,
    payload,
    seed_proposal,
    storm,
    user,
    violation_types,
)


def test_paper_mode_fills_at_the_public_price_and_sends_nothing(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, mode="paper", paper_balance_eur="1000000") as ex:
        ex.set_policy(uid, cooldown=3600)
        price = exchange.price("BTC-EUR")
        execution = ex.execute(uid, seed_proposal(postgres, uid, amount="100.00", price=price))

        assert execution.status == pb.EXECUTION_STATUS_FILLED
        assert execution.mode == pb.EXECUTION_MODE_PAPER
        assert execution.exchange_order_id == f"paper-{execution.client_order_id}"
        # Bitvavo takes the fee of a quote-sized buy out of amountQuote
        assert Decimal(execution.filled_amount_quote) + Decimal(execution.fee_paid) == Decimal("100")
        assert Decimal(execution.filled_amount) * price <= Decimal(execution.filled_amount_quote)
        assert [r["mode"] for r in executions(postgres, uid)] == ["paper"]
        assert len(fills(postgres, uid)) == 1
        assert exchange.post_count() == 0
        assert exchange.order_count() == 0

        # the same validators as live: the cooldown refuses the next one
        report = ex.refused(uid, seed_proposal(postgres, uid, price=price))
        assert report.code is grpc.StatusCode.FAILED_PRECONDITION
        assert violation_types(report) == ["COOLDOWN_ACTIVE"]
        kinds = [e.kind for e in ex.audit(uid)]
        assert kinds[-4:] == ["execution.claimed", "execution.transition", "execution.transition", "execution.rejected"]
        last_move = [payload(e) for e in ex.audit(uid, execution.execution_id)][-1]
        assert (last_move["from"], last_move["to"]) == ("SUBMITTING", "FILLED")


def test_paper_balance_is_a_wallet_of_its_own(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, mode="paper", paper_balance_eur="0") as ex:
        ex.set_policy(uid)
        report = ex.refused(
            uid, seed_proposal(postgres, uid, amount="10.00", price=exchange.price("ETH-EUR"), market="ETH-EUR")
        )
        assert violation_types(report) == ["INSUFFICIENT_BALANCE"]
        assert exchange.post_count() == 0


def _wallet_by_definition(postgres: Postgres, market: str) -> tuple[Decimal, Decimal]:
    """The paper wallet summed over every paper execution (what oracle.paper_wallet_effect says one
    execution spends and holds), read as the superuser: what the running totals must equal."""
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT COALESCE(sum(f.eur_spent), 0), COALESCE(sum(f.base_held) FILTER (WHERE e.market = %s), 0)"
            " FROM oracle.trade_executions e,"
            " oracle.paper_wallet_effect(e.mode, e.side, e.filled_amount, e.filled_amount_quote, e.fee_paid) f",
            (market,),
        ).fetchone()
    assert row is not None
    return Decimal(row[0]), Decimal(row[1])


def _wallet(postgres: Postgres, market: str) -> tuple[Decimal, Decimal]:
    with postgres.admin() as conn:
        row = conn.execute("SELECT eur_spent, base_held FROM oracle.paper_wallet(%s)", (market,)).fetchone()
    assert row is not None
    return Decimal(row[0]), Decimal(row[1])


def test_the_paper_wallet_totals_follow_every_paper_fill(postgres: Postgres, exchange: Exchange) -> None:
    """oracle.paper_wallet sums running totals kept by a trigger (migration 0028), not every
    execution: after concurrent buys and sells of several users they still equal the sum."""
    users = [user() for _ in range(6)]
    with in_process_executor(postgres, exchange.url, mode="paper", paper_balance_eur="1000000") as ex:
        for uid in users:
            ex.set_policy(uid)
        buys = [
            (uid, seed_proposal(postgres, uid, amount="30.00", price=exchange.price(m), market=m))
            for uid in users
            for m in ("BTC-EUR", "ETH-EUR")
        ]
        assert all(
            e.status == pb.EXECUTION_STATUS_FILLED
            for e in storm([functools.partial(ex.execute, u, p) for u, p in buys])
        )
        sells = [
            (uid, seed_proposal(postgres, uid, side="sell", amount="10.00", price=exchange.price("BTC-EUR")))
            for uid in users
        ]
        assert all(
            e.status == pb.EXECUTION_STATUS_FILLED
            for e in storm([functools.partial(ex.execute, u, p) for u, p in sells])
        )

    for market in ("BTC-EUR", "ETH-EUR"):
        assert _wallet(postgres, market) == _wallet_by_definition(postgres, market)
    eur_spent, btc_held = _wallet(postgres, "BTC-EUR")
    assert eur_spent > 0
    assert btc_held > 0
