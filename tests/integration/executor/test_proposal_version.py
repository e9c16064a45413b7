"""The executor validates exactly the proposal version its market data was fetched for
(docs/design.md#one-clock-per-decision; services/executor/execution.py).

Proposals are immutable (migration 0096), so nothing the services can do changes one between
the executor's unlocked read (the market data is fetched for it) and its re-read under the lock.
This test changes one anyway, as someone with the database's superuser would (triggers switched
off for that session): the executor must refuse, never claim on the facts fetched for the old
version, and send nothing.
"""

from __future__ import annotations

import grpc

from services.executor.execution import Hooks
from services.executor.model import Proposal
from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    executions,
    in_process_executor,
    seed_proposal,
    user,
    violation_types,
)


def _behind_the_database(postgres: Postgres, proposal_id: str, sql: str) -> None:
    with postgres.admin() as conn:
        conn.execute("SET session_replication_role = replica")  # no triggers: bypasses migration 0096
        conn.execute(f"UPDATE oracle.trade_proposals SET {sql} WHERE proposal_id = %s", (proposal_id,))


def test_a_proposal_changed_between_the_reads_is_refused_and_nothing_is_sent(
    postgres: Postgres, exchange: Exchange
) -> None:
    uid = user()
    price = exchange.price("BTC-EUR")
    changes = {
        "side": "side = 'sell'",
        "amount": "amount_quote = amount_quote * 10",
        "snapshot": "market_snapshot = jsonb_build_object('price', '1')",
    }
    pending: list[str] = []

    def change_it(proposal: Proposal) -> None:  # after the market data was fetched for it
        if pending:
            _behind_the_database(postgres, proposal.proposal_id, pending.pop())

    with in_process_executor(postgres, exchange.url, hooks=Hooks(after_fetch=change_it)) as ex:
        ex.set_policy(uid)
        before = exchange.post_count()
        for what, sql in changes.items():
            pid = seed_proposal(postgres, uid, price=price)
            pending.append(sql)
            report = ex.refused(uid, pid)
            assert report.code is grpc.StatusCode.FAILED_PRECONDITION, what
            assert violation_types(report) == ["PROPOSAL_CHANGED"], what
        assert exchange.post_count() == before
        assert executions(postgres, uid) == []

        # unchanged, the same path executes
        pid = seed_proposal(postgres, uid, price=price)
        assert ex.execute(uid, pid).exchange_order_id
    assert exchange.post_count() == before + 1
