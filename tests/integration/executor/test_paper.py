"""Paper mode: every validator, the claim and the state machine as live, and no order sent."""

from __future__ import annotations

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
